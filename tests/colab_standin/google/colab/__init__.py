"""A stand-in for Colab's `google.colab` package, for the simulated-Colab tests (tests/test_colab.py).

Only what this project calls: `drive.mount` and `userdata.get`. It is not on the path of any other
test; `google/` has no __init__.py so that it merges with protobuf's `google` namespace package.
"""
