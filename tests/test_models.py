"""Every preset builds at 128 and 64 px, with the report's layers and the right output ranges."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from gan_lib.config import GANConfig
from gan_lib.models import ARCHITECTURES, build_models


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
    g = [(type(layer).__name__, getattr(layer, "filters", getattr(layer, "units", None))) for layer in generator.layers]
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
