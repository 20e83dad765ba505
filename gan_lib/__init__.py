"""gan_lib: the thin library behind the notebooks (data, phantom, models, training, metrics, plots)."""

import sys

if sys.argv[:1] == ["-m"]:  # `python -m gan_lib...` is starting one of our programs, before any TensorFlow import:
    from .base.tf_noise import filter_stderr_until_exit  # its C++ start-up and remapper lines stay off the terminal

    filter_stderr_until_exit()
