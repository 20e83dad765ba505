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


def test_a_step_that_reuses_its_fakes_counts_one_generator_forward_pass_fewer():
    from gan_lib.config import GANConfig
    from gan_lib.models.architectures import build_models
    from gan_lib.scripts.bench import step_flops

    fresh = GANConfig.from_overrides(image_size=32, batch_size=4, reuse_fakes=False)
    reused = GANConfig.from_overrides(image_size=32, batch_size=4, reuse_fakes=True)
    generator, _ = build_models(fresh)
    assert step_flops(fresh) - step_flops(reused) == 4 * forward_flops(generator)
