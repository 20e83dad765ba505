"""Measures of generated images against real ones (`metrics`, `features`, `descriptors`, the tumour
`classifier`), whether generated images help that classifier (`utility`), and the evaluation of a
finished run that writes `metrics.json` (`evaluate`), shown as a table (`summary`)."""
