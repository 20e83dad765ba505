"""The architectures (`architectures`: the report's and the improved ones, conditional or not) and the
layers they are built from (`layers`: CPU speed layers, spectral norm, minibatch spread)."""
