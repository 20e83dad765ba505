"""The benchmark's FLOP counting (the timing itself is not a test)."""

from __future__ import annotations

import keras

from gan_lib.scripts.bench import forward_flops


def test_layer_flops_are_two_per_multiply_add():
    model = keras.Sequential([
        keras.Input((8, 8, 3)),
        keras.layers.Conv2D(4, 3, strides=2, padding="same"),  # 4x4x4 outputs, 3x3x3 taps each
        keras.layers.Conv2DTranspose(2, 4, strides=2, padding="same"),  # 4x4x4 inputs, each to 4x4x2
        keras.layers.Flatten(),
        keras.layers.Dense(5),  # 8*8*2 inputs
    ])
    conv = 4 * 4 * 4 * 27
    transposed = 4 * 4 * 4 * 16 * 2
    dense = 128 * 5
    assert forward_flops(model) == 2 * (conv + transposed + dense)
