"""Every preset builds at 128 and 64 px, with the report's layers and the right output ranges."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from gan_lib.config import GANConfig
from gan_lib.models import layers
from gan_lib.models.architectures import ARCHITECTURES, build_models
from gan_lib.models.layers import NarrowConv2D, PhaseConv2DTranspose, PhaseGradConv2D, with_stock_layers
from gan_lib.training.losses import bce_d_loss


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
    assert scores.shape == (3, 1)
    if not ARCHITECTURES[arch].d_logits:
        assert (scores >= 0).all() and (scores <= 1).all(), "sigmoid output"


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_a_sure_discriminator_keeps_learning_under_mixed_precision(precision):
    """Every D's output is float32 under a mixed policy (`models.output_unit`). At a logit of 8,
    where a bfloat16 or float16 sigmoid is exactly 1, the report D's probability stays below 1, and
    the BCE gradient that should make it less sure of a generated image is not zero."""
    keras.mixed_precision.set_global_policy(precision)
    try:
        for cfg in [GANConfig.from_overrides(arch=arch, image_size=32) for arch in sorted(ARCHITECTURES)] + [
                GANConfig.from_overrides(arch=arch, image_size=32, classes="both") for arch in ("report", "resize-sn")]:
            _, discriminator = build_models(cfg)
            images = np.zeros((2, 32, 32, 1), "float32")
            inputs = [images, np.array([0, 1], "int32")] if cfg.classes == "both" else images
            assert discriminator(inputs, training=False).dtype == "float32", cfg.arch
        _, discriminator = build_models(GANConfig.from_overrides(arch="report", image_size=32))
        unit = discriminator.layers[-1]
        unit.kernel.assign(tf.zeros_like(unit.kernel))
        unit.bias.assign([8.0])
        with tf.GradientTape() as tape:
            p = discriminator(np.zeros((2, 32, 32, 1), "float32"), training=False)
            loss = bce_d_loss(p, p, from_logits=False, real_label=1.0)
        assert float(tf.reduce_max(p)) < 1.0
        assert abs(float(tape.gradient(loss, unit.bias)[0])) > 0.4, "0.5 (p - (1 - p)): the real half's pull is ~0"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_spectral_norm_layers_have_unit_largest_singular_value():
    """After a few power iterations the normalised kernel's top singular value is 1, and the
    layer computes the wrapped layer's function of that kernel (the same as the stock layer's). Seeded:
    how many iterations the top singular value needs depends on the random kernel."""
    keras.utils.set_random_seed(0)
    conv = layers.SNConv2D(8, 3, strides=2, padding="same")
    dense = layers.SNDense(5, use_bias=False)
    x = np.random.default_rng(0).standard_normal((2, 8, 8, 3)).astype("float32")
    conv(x), dense(x.reshape(2, -1))
    for layer in (conv, dense):
        layer.kernel.assign(layer.kernel * 7.0)
        for _ in range(30):
            kernel = np.asarray(layer.normalised(layer.kernel))
        top = np.linalg.svd(kernel.reshape(-1, kernel.shape[-1]), compute_uv=False)[0]
        assert abs(top - 1.0) < 1e-3
    stock = keras.layers.Conv2D(8, 3, strides=2, padding="same")
    stock.build(x.shape)
    stock.set_weights([np.asarray(conv.normalised(conv.kernel)), np.asarray(conv.bias)])
    before = np.asarray(conv.singular_vector).copy()
    np.testing.assert_allclose(np.asarray(conv(x)), np.asarray(stock(x)), rtol=1e-3, atol=1e-3)
    assert np.allclose(np.asarray(conv.singular_vector), before, atol=1e-3), "converged: the estimate stays"


def _every_discriminator_takes(layer_class, **option):
    """Every architecture's D, built with the option, holds the layer and still scores each image."""
    for arch in sorted(ARCHITECTURES):
        _, discriminator = build_models(GANConfig.from_overrides(arch=arch, image_size=32, **option))
        assert any(isinstance(layer, layer_class) for layer in discriminator.layers), arch
        assert discriminator(np.zeros((3, 32, 32, 1), "float32"), training=False).shape == (3, 1)


def test_minibatch_stddev_shows_d_how_much_its_batch_varies():
    """The appended channel is the batch's mean per-position std: 0 for copies of one image, the
    numpy value for a varied batch; every D takes the option and still scores each image."""
    x = np.random.default_rng(0).standard_normal((4, 6, 6, 3)).astype("float32")
    varied = np.asarray(layers.MinibatchStddev()(x))
    assert varied.shape == (4, 6, 6, 4)
    np.testing.assert_allclose(varied[..., :3], x)
    np.testing.assert_allclose(varied[..., 3], x.std(axis=0).mean(), rtol=1e-5)
    copies = tf.constant(np.repeat(x[:1], 4, axis=0))
    with tf.GradientTape() as tape:
        tape.watch(copies)
        spread = layers.MinibatchStddev()(copies)[..., 3]
    assert np.abs(np.asarray(spread)).max() < 1e-3
    assert np.isfinite(np.asarray(tape.gradient(spread, copies))).all(), "a batch of copies must not give NaN"
    _every_discriminator_takes(layers.MinibatchStddev, minibatch_stddev=True)


def test_the_symmetry_channel_shows_d_where_an_image_differs_from_its_mirror_image():
    """The appended channel is the image minus its left-right mirror image: zero for a symmetric
    image, the tumour-like spot (and its negative mirror) otherwise; every D takes the option."""
    symmetric = np.random.default_rng(0).uniform(-1, 1, (2, 6, 6, 1)).astype("float32")
    symmetric = symmetric + symmetric[:, :, ::-1]
    seen = np.asarray(layers.MirrorDifference()(symmetric))
    assert seen.shape == (2, 6, 6, 2)
    np.testing.assert_allclose(seen[..., :1], symmetric)
    assert np.abs(seen[..., 1]).max() == 0
    spotted = symmetric.copy()
    spotted[:, 2, 1] += 1.0
    difference = np.asarray(layers.MirrorDifference()(spotted))[..., 1]
    assert np.allclose(difference[:, 2, 1], 1.0) and np.allclose(difference[:, 2, 4], -1.0)
    assert np.count_nonzero(difference) == 4, "only the spot and its mirror position differ"
    _every_discriminator_takes(layers.MirrorDifference, symmetry_channel=True)


@pytest.mark.parametrize("label_every_block", [False, True])
@pytest.mark.parametrize("arch", ["resize-sn", "report"])
def test_conditional_models_take_the_label_and_unconditional_ones_do_not(arch, label_every_block):
    cfg = GANConfig.from_overrides(arch=arch, image_size=32, classes="both", minibatch_stddev=True,
                                   label_every_block=label_every_block)
    generator, discriminator = build_models(cfg)
    noise = np.random.default_rng(0).standard_normal((4, cfg.noise_dim)).astype("float32")
    labels = np.array([0, 1, 0, 1], "int32")
    images = np.asarray(generator([noise, labels], training=False))
    assert images.shape == (4, 32, 32, 1)
    assert not np.allclose(images, np.asarray(generator([noise, 1 - labels], training=False))), "the label matters"
    assert discriminator([images, labels], training=False).shape == (4, 1)
    assert not np.allclose(discriminator([images, labels], training=False),
                           discriminator([images, 1 - labels], training=False)), "D's verdict depends on the label"
    assert len(build_models(GANConfig.from_overrides(arch=arch, image_size=32, classes="yes"))[0].inputs) == 1
    assert len(build_models(GANConfig.from_overrides(arch="report-v1", image_size=32, classes="both"))[0].inputs) == 1


def test_label_every_block_gives_each_class_its_own_gain_and_bias_after_every_upsampling(tmp_path):
    """A gain and a bias per class after each grid block (the report G's two transposed
    convolutions); they start as the identity, so G computes what it computes without them, and a
    change to one class's gain reaches only that class's images. The saved stock copy loads and
    computes the same without gan_lib."""
    plain = GANConfig.from_overrides(image_size=32, classes="both", label_every_block=False)
    generator = build_models(GANConfig.from_overrides(**{**plain.to_dict(), "label_every_block": True}))[0]
    tables = [layer.name for layer in generator.layers if layer.name.startswith("class_")]
    assert tables == ["class_gain_16px", "class_bias_16px", "class_gain_32px", "class_bias_32px"]
    without = build_models(plain)[0]
    shared = [layer for layer in generator.layers if layer.weights and layer.name not in tables]
    for mine, theirs in zip(shared, [layer for layer in without.layers if layer.weights], strict=True):
        theirs.set_weights(mine.get_weights())
    noise = np.random.default_rng(0).standard_normal((4, plain.noise_dim)).astype("float32")
    labels = np.array([0, 1, 0, 1], "int32")
    before = np.asarray(generator([noise, labels]))
    np.testing.assert_allclose(before, np.asarray(without([noise, labels])), atol=1e-6)
    gain = generator.get_layer("class_gain_32px")
    table = gain.get_weights()[0]
    table[1] *= 3.0  # tumour (1) only
    gain.set_weights([table])
    after = np.asarray(generator([noise, labels]))
    np.testing.assert_array_equal(after[labels == 0], before[labels == 0])
    assert not np.allclose(after[labels == 1], before[labels == 1])
    with_stock_layers(generator).save(tmp_path / "g.keras")
    stock = keras.models.load_model(tmp_path / "g.keras", compile=False)
    np.testing.assert_allclose(np.asarray(stock([noise, labels])), after, atol=1e-5)


def test_report_preset_is_the_reports_final_model_layer_for_layer():
    generator, discriminator = build_models(GANConfig.from_overrides(image_size=128, preset="report"))
    def kind(layer):  # the fast layers are the stock layers, computed differently; ReplicaDropout is Dropout
        stock = layers.STOCK_LAYERS.get(type(layer), type(layer))
        while not stock.__module__.startswith("keras"):
            stock = stock.__base__
        return stock.__name__

    g = [(kind(layer), getattr(layer, "filters", getattr(layer, "units", None))) for layer in generator.layers]
    assert g == [("Dense", 32 * 32 * 256), ("LeakyReLU", None), ("Reshape", None), ("Conv2DTranspose", 128),
                 ("LeakyReLU", None), ("Conv2DTranspose", 128), ("LeakyReLU", None), ("Conv2D", 1)]
    d = [kind(layer) for layer in discriminator.layers]
    assert d == ["Conv2D", "LeakyReLU"] * 4 + ["Flatten", "Dropout", "Dense"]
    assert discriminator.layers[-2].rate == 0.4
    assert [layer.strides for layer in discriminator.layers if isinstance(layer, keras.layers.Conv2D)] == \
        [(1, 1), (2, 2), (2, 2), (2, 2)]


def test_unknown_architecture_lists_the_known_ones():
    with pytest.raises(ValueError, match="known architectures.*report"):
        build_models(GANConfig.from_overrides(arch="stylegan9"))


FAST_LAYER_CASES = [
    # (fast layer, stock layer, kernel, stride, input side, channels in, out, activation)
    (PhaseConv2DTranspose, keras.layers.Conv2DTranspose, 4, 2, 5, 3, 2, None),
    (PhaseConv2DTranspose, keras.layers.Conv2DTranspose, 4, 2, 8, 6, 4, "tanh"),
    (PhaseConv2DTranspose, keras.layers.Conv2DTranspose, 4, 2, 16, 8, 1, "relu"),
    (PhaseGradConv2D, keras.layers.Conv2D, 3, 2, 16, 4, 6, None),       # the report's D
    (PhaseGradConv2D, keras.layers.Conv2D, 4, 2, 8, 3, 5, "tanh"),      # report-v1's D
    (PhaseGradConv2D, keras.layers.Conv2D, 5, 2, 12, 2, 3, None),
    (PhaseGradConv2D, keras.layers.Conv2D, 3, 2, 9, 2, 3, "relu"),      # odd side: the stock path
    (NarrowConv2D, keras.layers.Conv2D, 3, 1, 16, 1, 8, None),          # the report's D input layer
    (NarrowConv2D, keras.layers.Conv2D, 4, 1, 12, 8, 1, "tanh"),        # the report's G output layer
    (NarrowConv2D, keras.layers.Conv2D, 5, 1, 9, 2, 3, None),           # odd side and kernel
    (NarrowConv2D, keras.layers.Conv2D, 3, 1, 8, 16, 16, "relu"),       # wide both sides: the stock path
]


@pytest.mark.parametrize("fast_cls, stock_cls, kernel, stride, side, c_in, c_out, activation", FAST_LAYER_CASES)
@pytest.mark.parametrize("jit_compile", [False, True])
def test_fast_layers_equal_the_stock_layer_and_its_gradients(fast_cls, stock_cls, kernel, stride, side, c_in, c_out,
                                                             activation, jit_compile):
    import tensorflow as tf

    x = tf.random.stateless_normal((2, side, side, c_in), seed=(1, side))
    stock = stock_cls(c_out, kernel, strides=stride, padding="same", activation=activation)
    fast = fast_cls(c_out, kernel, strides=stride, padding="same", activation=activation)
    stock.build(x.shape)
    fast.build(x.shape)
    weights = [np.random.default_rng(side).standard_normal(w.shape).astype("float32") for w in stock.get_weights()]
    stock.set_weights(weights)
    fast.set_weights(weights)

    def values_and_gradients(layer):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(y * tf.cos(y))
        return (y, *tape.gradient(loss, [x, layer.kernel, layer.bias]))

    expected = values_and_gradients(stock)
    got = tf.function(values_and_gradients, jit_compile=jit_compile)(fast)
    assert got[0].shape == expected[0].shape
    for a, b in zip(expected, got):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-4)


def test_exported_generator_uses_stock_layers_and_gives_the_same_images(tmp_path):
    generator, discriminator = build_models(GANConfig.from_overrides(image_size=32))
    exported = with_stock_layers(generator)
    fast = tuple(layers.STOCK_LAYERS)
    assert not any(isinstance(layer, fast) for model in (generator, discriminator)
                   for layer in with_stock_layers(model).layers)
    noise = np.random.default_rng(0).standard_normal((2, 100)).astype("float32")
    np.testing.assert_allclose(np.asarray(exported(noise)), np.asarray(generator(noise)), atol=1e-5)
    exported.save(tmp_path / "g.keras")
    saved = (tmp_path / "g.keras").read_bytes().decode("latin-1")
    assert not any(cls.__name__ in saved for cls in fast)
