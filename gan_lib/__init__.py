"""gan_lib: the thin library behind the notebooks (data, phantom, models, training, metrics, plots)."""
