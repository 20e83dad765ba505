"""The JSON records a run and a dataset keep of themselves, as typed dataclasses with a
`schema_version`, each read and written in one place (whole or not at all): a run folder's
config.json (`run`), a dataset's manifest (`manifest`), a run's metrics.json and best.json
(`evaluation`). A record an older gan_lib wrote is upgraded on read, by `migrations` only."""
