"""Programs built on gan_lib, not part of it: `make bench`, `make quality`, the papermill runner
behind make and 00_colab, and the writer of the notebooks' Colab cell. Nothing in gan_lib imports them."""
