"""Differentiable augmentation: the identity when off, differentiable, and each operation does
what it says."""

import numpy as np
import pytest
import tensorflow as tf

from gan_lib.training.augment import OPERATIONS, AdaController, augment, parse_policy


def images(n=6, side=32):
    x = np.full((n, side, side, 1), -1.0, np.float32)
    x[:, 8:24, 8:24] = np.linspace(-0.5, 0.9, n)[:, None, None, None]
    return tf.constant(x)


def test_policy_parsing():
    assert parse_policy("") == () and parse_policy(" translation, cutout ") == ("translation", "cutout")
    with pytest.raises(ValueError, match="saturation"):
        parse_policy("translation,saturation")


@pytest.mark.parametrize("policy", [(), OPERATIONS])
def test_identity_when_off_or_at_probability_zero(policy):
    x = images()
    out = augment(x, tf.random.Generator.from_seed(0), 0.0 if policy else 1.0, policy)
    np.testing.assert_allclose(out.numpy(), x.numpy(), atol=1e-6)


@pytest.mark.parametrize("name", OPERATIONS)
def test_each_operation_changes_images_and_passes_gradients(name):
    x = images()
    rng = tf.random.Generator.from_seed(1)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = augment(x, rng, 1.0, (name,))
        loss = tf.reduce_sum(out * tf.range(out.shape[1], dtype=tf.float32)[None, :, None, None])
    grad = tape.gradient(loss, x)
    assert out.shape == x.shape and not np.allclose(out.numpy(), x.numpy())
    assert grad is not None and np.isfinite(grad.numpy()).all() and np.abs(grad.numpy()).sum() > 0


def test_translation_moves_the_content_and_fills_with_background():
    x = images(n=8)
    out = augment(x, tf.random.Generator.from_seed(2), 1.0, ("translation",)).numpy()
    moved = [not np.array_equal(before, after) for before, after in zip(x.numpy(), out)]
    assert any(moved)
    for before, after in zip(x.numpy(), out):  # shifts of up to 4 px keep the 16 px square inside
        np.testing.assert_array_equal(np.sort(after.ravel()), np.sort(before.ravel()))


def test_cutout_erases_to_background_only():
    x = images()
    out = augment(x, tf.random.Generator.from_seed(3), 1.0, ("cutout",)).numpy()
    changed = out != x.numpy()
    assert changed.any() and (out[changed] == -1.0).all()


def test_ada_raises_p_while_d_is_too_sure_of_reals_and_lowers_it_otherwise():
    ada = AdaController(("translation",), start_p=0.5, target=0.6, batch_size=4)
    for _ in range(40):
        ada.update(1.0)
    raised = float(ada.p)
    for _ in range(200):
        ada.update(0.0)
    assert raised > 0.5 and 0.0 <= float(ada.p) < raised


def test_without_a_policy_p_is_zero_and_nothing_adapts():
    assert float(AdaController((), start_p=0.7, target=0.6, batch_size=4).p) == 0.0
    assert not AdaController((), start_p=0.7, target=0.6, batch_size=4).adaptive
    assert not AdaController(("cutout",), start_p=0.7, target=0.0, batch_size=4).adaptive
