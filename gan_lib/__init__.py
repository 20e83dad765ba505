"""gan_lib: the thin library behind the notebooks (data, phantom, models, training, metrics, plots)."""

from .tf_noise import quiet_tensorflow

quiet_tensorflow()  # before any module here imports TensorFlow: its INFO/WARNING start-up lines stay off
