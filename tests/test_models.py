"""Every preset builds at 128 and 64 px, with the report's layers and the right output ranges."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from gan_lib.config import GANConfig
from gan_lib.models import ARCHITECTURES, PhaseConv2DTranspose, build_models, export_generator


@pytest.mark.parametrize("size", [128, 64])
@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_shapes_and_output_ranges(arch, size):
    cfg = GANConfig.from_overrides(arch=arch, image_size=size)
    generator, discriminator = build_models(cfg)
    assert generator.output_shape == (None, size, size, 1)
    assert discriminator.output_shape == (None, 1)
    noise = np.random.default_rng(0).standard_normal((3, cfg.noise_dim)).astype("float32") * 5
    fakes = np.asarray(generator(noise, training=False))
    assert np.abs(fakes).max() <= 1.0, "tanh output"
    scores = np.asarray(discriminator(fakes, training=False))
    assert scores.shape == (3, 1) and (scores >= 0).all() and (scores <= 1).all(), "sigmoid output"


def test_report_preset_is_the_reports_final_model_layer_for_layer():
    generator, discriminator = build_models(GANConfig.from_overrides(arch="report", image_size=128))
    def kind(layer):  # the fast transposed conv is the stock layer, computed differently
        return "Conv2DTranspose" if isinstance(layer, keras.layers.Conv2DTranspose) else type(layer).__name__

    g = [(kind(layer), getattr(layer, "filters", getattr(layer, "units", None))) for layer in generator.layers]
    assert g == [("Dense", 32 * 32 * 256), ("LeakyReLU", None), ("Reshape", None), ("Conv2DTranspose", 128),
                 ("LeakyReLU", None), ("Conv2DTranspose", 128), ("LeakyReLU", None), ("Conv2D", 1)]
    d = [type(layer).__name__ for layer in discriminator.layers]
    assert d == ["Conv2D", "LeakyReLU"] * 4 + ["Flatten", "Dropout", "Dense"]
    assert discriminator.layers[-2].rate == 0.4
    assert [layer.strides for layer in discriminator.layers if isinstance(layer, keras.layers.Conv2D)] == \
        [(1, 1), (2, 2), (2, 2), (2, 2)]


def test_unknown_architecture_lists_the_known_ones():
    with pytest.raises(ValueError, match="known architectures.*report"):
        build_models(GANConfig.from_overrides(arch="stylegan9"))


@pytest.mark.parametrize("side, c_in, c_out, activation", [(5, 3, 2, None), (8, 6, 4, "tanh"), (16, 8, 1, "relu")])
def test_phase_transposed_conv_equals_the_stock_layer_and_its_gradients(side, c_in, c_out, activation):
    import tensorflow as tf

    x = tf.random.stateless_normal((2, side, side, c_in), seed=(1, side))
    stock = keras.layers.Conv2DTranspose(c_out, 4, strides=2, padding="same", activation=activation)
    fast = PhaseConv2DTranspose(c_out, 4, strides=2, padding="same", activation=activation)
    stock.build(x.shape)
    fast.build(x.shape)
    weights = [np.random.default_rng(side).standard_normal(w.shape).astype("float32") for w in stock.get_weights()]
    stock.set_weights(weights)
    fast.set_weights(weights)
    grads = []
    for layer in (stock, fast):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(y * tf.cos(y))
        grads.append((y, *tape.gradient(loss, [x, layer.kernel, layer.bias])))
    assert grads[1][0].shape == (2, 2 * side, 2 * side, c_out)
    for a, b in zip(*grads):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-4)


def test_exported_generator_uses_stock_layers_and_gives_the_same_images(tmp_path):
    generator, _ = build_models(GANConfig.from_overrides(image_size=32))
    exported = export_generator(generator)
    assert not any(isinstance(layer, PhaseConv2DTranspose) for layer in exported.layers)
    noise = np.random.default_rng(0).standard_normal((2, 100)).astype("float32")
    np.testing.assert_allclose(np.asarray(exported(noise)), np.asarray(generator(noise)), atol=1e-5)
    exported.save(tmp_path / "g.keras")
    assert "PhaseConv2DTranspose" not in (tmp_path / "g.keras").read_bytes().decode("latin-1")
