"""The training step: each model through its own optimiser, the losses and R1, the EMA, the label of a
conditional GAN, augmentation, mirroring, precisions."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from conftest import small_cfg

from gan_lib.config import GANConfig
from gan_lib.data.storage import processed_path
from gan_lib.runs.logs import load_history
from gan_lib.training.engine import Engine
from gan_lib.training.loop import train
from gan_lib.training.losses import bce_d_loss, r1_penalty
from gan_lib.training.step import GANTrainer

pytestmark = pytest.mark.slow  # trains, or starts processes or notebooks: not in `make test-fast`


def test_one_step_updates_each_model_through_its_own_optimiser():
    cfg = GANConfig.from_overrides(image_size=32)
    images = np.random.default_rng(0).uniform(-1, 1, (10, 32, 32, 1)).astype("float32")
    trainer = GANTrainer(cfg, images)
    before_g = [w.copy() for w in trainer.generator.get_weights()]
    before_d = [w.copy() for w in trainer.discriminator.get_weights()]
    out = trainer.compiled_step()
    assert all(np.isfinite(float(v)) for v in out.values())
    assert all((a != b).any() for a, b in zip(before_g, trainer.generator.get_weights()))
    assert all((a != b).any() for a, b in zip(before_d, trainer.discriminator.get_weights()))
    assert int(trainer.g_opt.iterations) == 1 and int(trainer.d_opt.iterations) == 1
    g_vars = {id(v) for v in trainer.generator.trainable_variables}
    d_vars = {id(v) for v in trainer.discriminator.trainable_variables}
    assert {id(v) for v in trainer.g_opt._trainable_variables} == g_vars
    assert {id(v) for v in trainer.d_opt._trainable_variables} == d_vars


@pytest.mark.parametrize("precision, r1_gamma, preset", [("mixed_float16", 0.0, "report-ada-mbstd-r1"),
                                                          ("mixed_float16", 1.0, "report-ada-mbstd-r1"),
                                                          ("mixed_bfloat16", 1.0, "report-ada-mbstd-r1"),
                                                          ("mixed_float16", 1.0, "resize-sn")])
def test_each_mixed_precision_trains_with_float32_weights(precision, r1_gamma, preset):
    """The GPU and TPU paths, forced on the CPU: float16 (with loss scaling) or bfloat16 compute,
    float32 weights, finite losses; the spectrally normalised D too (its power iteration in float32)."""
    cfg = GANConfig.from_overrides(preset=preset, image_size=32, r1_gamma=r1_gamma)
    images = np.random.default_rng(0).uniform(-1, 1, (10, 32, 32, 1)).astype("float32")
    try:
        trainer = GANTrainer(cfg, images, engine=Engine(precision))
        assert trainer.generator.layers[-1].compute_dtype == precision.removeprefix("mixed_")
        assert trainer.generator.layers[-1].kernel.dtype == "float32"
        before = trainer.generator.get_weights()[0].copy()
        out = trainer.compiled_step()
        assert all(np.isfinite(float(v)) for v in out.values())
        assert (trainer.generator.get_weights()[0] != before).any()
        assert isinstance(trainer.g_opt, keras.optimizers.LossScaleOptimizer) == (precision == "mixed_float16")
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_augmented_training_compiles_is_reproducible_and_changes_what_d_sees(data_root, tmp_path):
    policy = dict(epochs=1, augment="translation,cutout,brightness,contrast", xla="on")
    a = load_history(train(small_cfg(data_root, tmp_path, run_name="aug_a", **policy)))
    b = load_history(train(small_cfg(data_root, tmp_path, run_name="aug_b", **policy)))
    plain = load_history(train(small_cfg(data_root, tmp_path, run_name="plain", epochs=1)))
    losses = lambda h: [(r["d_loss"], r["g_loss"]) for r in h]  # noqa: E731
    assert losses(a) == losses(b) and losses(a) != losses(plain)
    with pytest.raises(ValueError, match="unknown"):
        train(small_cfg(data_root, tmp_path, run_name="bad", augment="saturation"))


def test_ema_weights_move_toward_the_live_weights_and_are_what_the_run_saves(data_root, tmp_path):
    import tensorflow as tf

    cfg = GANConfig.from_overrides(image_size=32, arch="report-v1", ema_decay=0.99)  # v1 has BatchNorm
    trainer = GANTrainer(cfg, np.random.default_rng(0).uniform(-1, 1, (10, 32, 32, 1)).astype("float32"))
    trainer.compiled_step()
    live = [w.copy() for w in trainer.generator.get_weights()]
    zeros = [np.zeros_like(w) for w in live]
    trainer.ema.model.set_weights(zeros)
    trainer.ema.update(trainer.step)  # step 1: decay min(0.99, 2 / 11)
    decay = 2.0 / 11.0
    for average, current in zip(trainer.ema.model.trainable_variables, trainer.generator.trainable_variables):
        np.testing.assert_allclose(np.asarray(average), (1 - decay) * np.asarray(current), rtol=1e-5, atol=1e-7)
    for average, current in zip(trainer.ema.model.non_trainable_variables,
                                trainer.generator.non_trainable_variables):  # BatchNorm statistics: copied
        np.testing.assert_array_equal(np.asarray(average), np.asarray(current))
    run_dir = train(small_cfg(data_root, tmp_path, run_name="ema", epochs=1, ema_decay=0.9))
    saved = keras.models.load_model(run_dir / "generator.keras")
    noise = np.load(run_dir / "samples" / "z_fixed.npy")[:4]
    resumed = GANTrainer(small_cfg(data_root, tmp_path, run_name="ema", epochs=1, ema_decay=0.9), np.zeros((2, 32, 32, 1)))
    resumed.checkpoint.restore(tf.train.latest_checkpoint(str(run_dir / "checkpoints"))).expect_partial()
    np.testing.assert_allclose(saved.predict(noise, verbose=0), resumed.samples(noise), atol=1e-5)
    assert not np.allclose(resumed.samples(noise), np.asarray(resumed.generator(noise, training=False)))


def test_hinge_loss_needs_a_logit_discriminator():
    with pytest.raises(ValueError, match="logits"):
        GANTrainer(GANConfig.from_overrides(image_size=32, arch="report", loss="hinge"), np.zeros((2, 32, 32, 1)))


def trained_on_two_plain_classes(data_root, steps=60, **models):
    """A conditional trainer after `steps` steps on two classes that differ plainly (phantom heads,
    class 1, and the same heads dimmed, class 0), with its images and labels."""
    from gan_lib.data.storage import load_processed

    cfg = GANConfig.from_overrides(data_source="phantom", data_root=str(data_root), image_size=32, classes="both",
                                   **models)
    heads, _, _ = load_processed(processed_path(GANConfig.from_overrides(**{**cfg.to_dict(), "classes": "yes"})))
    images = np.concatenate([heads, (heads + 1.0) * 0.3 - 1.0])
    labels = np.concatenate([np.ones(len(heads)), np.zeros(len(heads))]).astype("int32")
    trainer = GANTrainer(cfg, images, labels=labels, engine=Engine(xla="none"))
    for _ in range(steps):
        trainer.compiled_step()
    return trainer, images, labels


@pytest.fixture(scope="module")
def two_class_trainers(data_root):
    """`trained_on_two_plain_classes`, each set of models trained once for this module's tests."""
    trained = {}

    def trainer_of(**models):
        key = tuple(sorted(models.items()))
        if key not in trained:
            trained[key] = trained_on_two_plain_classes(data_root, **models)
        return trained[key]
    return trainer_of


@pytest.mark.parametrize("models", [{"arch": "resize-sn", "loss": "hinge"}, {}], ids=["resize-sn", "default"])
def test_the_conditional_generator_obeys_its_label(two_class_trainers, models):
    """After training on two plainly different classes, a brightness threshold set on the real
    classes sorts the generated images by their label (60 steps: a start, not a finished generator)."""
    trainer, images, labels = two_class_trainers(**models)
    threshold = (images[labels == 1].mean() + images[labels == 0].mean()) / 2
    noise = np.random.default_rng(1).standard_normal((64, trainer.cfg.noise_dim)).astype("float32")
    brightness = {label: np.asarray(trainer.generator([noise, np.full(64, label, "int32")], training=False)).mean((1, 2, 3))
                  for label in (0, 1)}
    accuracy = ((brightness[1] > threshold).mean() + (brightness[0] <= threshold).mean()) / 2
    # chance 0.5; measured: 1.0 (both, and the default without mismatched_labels); 0.52 without it and label_every_block
    assert accuracy > 0.7, accuracy


def test_mismatched_labels_teach_d_that_a_real_scan_under_the_other_label_is_generated(two_class_trainers):
    """With `mismatched_labels` (on in the default preset), D's verdict on a real image turns on its
    label: every training image scores higher under its own class than under the other, and under the
    other D calls it generated. (Measured without the setting, same 60 steps: all score higher, but
    means 0.70 against 0.59.)"""
    assert GANConfig.from_overrides().mismatched_labels, "the default preset's trainer is the one with the setting"
    trainer, images, labels = two_class_trainers()
    right, wrong = (np.asarray(trainer.discriminator([images, label], training=False))[:, 0]
                    for label in (labels, 1 - labels))
    assert (right > wrong).all()
    assert wrong.mean() < 0.25 < right.mean(), (right.mean(), wrong.mean())  # measured: 0.82 and 0.08


def r1_and_its_weight_gradients(trainer, real):
    """The R1 term as D's update computes it, and its gradient wrt D's weights (second order)."""
    import tensorflow as tf

    with tf.GradientTape() as tape:
        with tf.GradientTape(watch_accessed_variables=False) as input_tape:
            input_tape.watch(real)
            d_real = trainer.updates._discriminate(real, None, {})
        penalty = r1_penalty(input_tape, d_real, real, trainer.cfg.r1_gamma, trainer.d_logits, float16=False)
    return float(penalty), tape.gradient(penalty, trainer.discriminator.trainable_variables)


def test_r1_is_the_squared_input_gradient_of_d_logit_and_trains_d_through_the_phase_layers():
    import tensorflow as tf

    from gan_lib.models.layers import with_stock_layers

    cfg = GANConfig.from_overrides(image_size=32, arch="report-v1", r1_gamma=2.0)  # D without Dropout
    real = tf.constant(np.random.default_rng(0).uniform(-1, 1, (4, 32, 32, 1)).astype("float32"))
    trainer = GANTrainer(cfg, real.numpy())
    penalty, phase_grads = r1_and_its_weight_gradients(trainer, real)

    def summed_logit(x):
        p = tf.cast(trainer.discriminator(x, training=True), tf.float64)
        return float(tf.reduce_sum(tf.math.log(p / (1 - p))))

    with tf.GradientTape() as tape:
        tape.watch(real)
        p = trainer.discriminator(real, training=True)
        logit_sum = tf.reduce_sum(tf.math.log(p / (1 - p)))
    g = tape.gradient(logit_sum, real)
    eps = 1e-2 / float(tf.reduce_max(tf.abs(g)))
    slope = (summed_logit(real + eps * g) - summed_logit(real - eps * g)) / (2 * eps)  # = sum of |grad|^2
    assert penalty > 0
    np.testing.assert_allclose(penalty, 0.5 * cfg.r1_gamma * slope / 4, rtol=2e-2)
    # Its second derivative passes the custom-gradient layers: the same as through stock Keras layers
    trainer.discriminator = trainer.updates.discriminator = with_stock_layers(trainer.discriminator)
    stock_penalty, stock_grads = r1_and_its_weight_gradients(trainer, real)
    np.testing.assert_allclose(stock_penalty, penalty, rtol=1e-4)
    kernels = [g for v, g in zip(trainer.discriminator.trainable_variables, phase_grads) if "kernel" in v.path]
    assert len(kernels) == 3 and all(float(tf.reduce_max(tf.abs(g))) > 0 for g in kernels)  # biases: 0, R1 ignores them
    for phase, stock in zip(phase_grads, stock_grads):
        np.testing.assert_allclose(phase, stock, rtol=1e-3, atol=1e-6)


def _trainer_after(cfg, images, steps, engine=Engine("float32", True, "none")):
    trainer = GANTrainer(cfg, images, engine=engine)
    for _ in range(steps):
        trainer.compiled_step()
    return trainer


def test_lazy_r1_applies_the_penalty_n_times_on_every_nth_step_only(tmp_path):
    """r1_every=4: step 0 is the step of an every-step R1 four times as strong; step 1 is the step
    without R1 (from the same state); D's logged loss carries the penalty at its weight per step."""
    images = np.random.default_rng(0).uniform(-1, 1, (10, 32, 32, 1)).astype("float32")
    settings = dict(image_size=32, arch="report-v1", augment="", ema_decay=0.0)  # no Dropout, no augmentation
    lazy = _trainer_after(GANConfig.from_overrides(r1_gamma=0.5, r1_every=4, **settings), images, 1)
    every_step = _trainer_after(GANConfig.from_overrides(r1_gamma=2.0, r1_every=1, **settings), images, 1)
    # Adam's first step moves each weight by about the learning rate (2e-4) whatever its gradient's
    # size: the two losses' rounding apart ((d + p) + 3p against d + 4p) moves it by under 1 % of that
    for a, b in zip(lazy.discriminator.get_weights() + lazy.generator.get_weights(),
                    every_step.discriminator.get_weights() + every_step.generator.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=2e-6)
    lazy.checkpoint.write(str(tmp_path / "after_step_0"))
    without = GANTrainer(GANConfig.from_overrides(r1_gamma=0.0, **settings), images, engine=lazy.engine)
    without.checkpoint.read(str(tmp_path / "after_step_0")).assert_consumed()
    lazy_out, without_out = lazy.compiled_step(), without.compiled_step()
    for name in ("d_loss", "g_loss", "d_real", "d_fake"):
        np.testing.assert_allclose(float(lazy_out[name]), float(without_out[name]), rtol=1e-6)
    for a, b in zip(lazy.discriminator.get_weights(), without.discriminator.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=2e-6)


def test_reusing_the_fakes_changes_only_the_generators_update():
    """G's update goes through the images D just trained on instead of fresh ones: D's update is
    the same, G's differs; and G's loss is then D's (updated) verdict on exactly those images."""
    images = np.random.default_rng(0).uniform(-1, 1, (10, 32, 32, 1)).astype("float32")
    settings = dict(image_size=32, arch="report-v1", augment="", ema_decay=0.0, r1_gamma=0.0, batch_size=1)
    fresh = _trainer_after(GANConfig.from_overrides(reuse_fakes=False, **settings), images, 1)
    reused = _trainer_after(GANConfig.from_overrides(reuse_fakes=True, **settings), images, 1)
    for a, b in zip(fresh.discriminator.get_weights(), reused.discriminator.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert any((a != b).any() for a, b in zip(fresh.generator.get_weights(), reused.generator.get_weights()))
    # With D's learning rate too small to move it, D's verdict on the reused image is the one it gave in D's update
    tiny = GANConfig.from_overrides(reuse_fakes=True, learning_rate=1e-12, **settings)
    out = GANTrainer(tiny, images, engine=Engine("float32", True, "none")).compiled_step()
    np.testing.assert_allclose(float(out["g_loss"]), -np.log(float(out["d_fake"])), rtol=1e-4)


def test_one_sided_label_smoothing_pulls_a_sure_d_back_from_certainty_on_real_images():
    """real_label=0.9: D's loss on a real image is least where D says 0.9, so a D sure of a real
    image (0.99) is pushed down where the report's target 1 pushes it further up; the trainer uses
    it for D's loss only, and a loss without a target refuses it."""
    import tensorflow as tf

    logit = tf.Variable([2.0, np.log(0.99 / 0.01)])  # D says 0.88 and 0.99 of two real images
    pulls = {}
    for real_label in (0.9, 1.0):
        with tf.GradientTape() as tape:
            loss = bce_d_loss(tf.sigmoid(logit), tf.zeros(2), from_logits=False, real_label=real_label)
        pulls[real_label] = tape.gradient(loss, logit).numpy()  # 0.25 (p - target) per image
    np.testing.assert_allclose(pulls[0.9], 0.25 * (tf.sigmoid(logit).numpy() - 0.9), atol=1e-6)
    assert pulls[0.9][1] > 0 > pulls[1.0][1], "descent lowers a sure logit with 0.9, raises it with 1"
    images = np.random.default_rng(0).uniform(-1, 1, (10, 32, 32, 1)).astype("float32")
    settings = dict(image_size=32, arch="report-v1", augment="", ema_decay=0.0, r1_gamma=0.0)
    report, smoothed = (GANTrainer(GANConfig.from_overrides(real_label=label, **settings), images).compiled_step()
                        for label in (1.0, 0.9))
    assert float(report["d_real"]) == float(smoothed["d_real"]), "the same D saw the same images"
    assert float(report["d_loss"]) != float(smoothed["d_loss"])
    for bad in (dict(real_label=0.5), dict(real_label=1.1), dict(arch="resize-sn", loss="hinge", real_label=0.9)):
        with pytest.raises(ValueError, match="real_label"):
            GANConfig.from_overrides(**bad)


def test_mirror_shows_d_each_real_image_or_its_mirror_image_half_the_time_each():
    """With `mirror`, every real image D sees is a training image, left-right flipped in about half
    the draws; without it, none is flipped."""
    images = np.random.default_rng(0).uniform(-1, 1, (10, 32, 32, 1)).astype("float32")
    for mirror, flipped_share in ((True, (0.35, 0.65)), (False, (0.0, 0.0))):
        trainer = GANTrainer(GANConfig.from_overrides(image_size=32, mirror=mirror), images)
        reals = np.concatenate([trainer._draws()["real"].numpy() for _ in range(50)])
        as_drawn = (np.abs(reals[:, None] - images[None]).max(axis=(2, 3, 4)) == 0).any(axis=1)
        as_mirrored = (np.abs(reals[:, None] - images[None, :, :, ::-1]).max(axis=(2, 3, 4)) == 0).any(axis=1)
        assert (as_drawn | as_mirrored).all(), "every real image D sees is a training image or its mirror"
        assert flipped_share[0] <= as_mirrored.mean() <= flipped_share[1]


@pytest.mark.parametrize("before, after", [("float32", "mixed_float16"), ("mixed_float16", "mixed_bfloat16")])
def test_a_checkpoint_restores_under_another_precision(before, after, tmp_path):
    """A run may resume on a machine whose auto precision differs (a T4's float16, an A100's bfloat16)."""
    cfg = GANConfig.from_overrides(image_size=32)
    images = np.random.default_rng(0).uniform(-1, 1, (8, 32, 32, 1)).astype("float32")
    try:
        trainer = GANTrainer(cfg, images, engine=Engine(before))
        trainer.compiled_step()
        path = trainer.checkpoint.save(str(tmp_path / "ckpt"))
        resumed = GANTrainer(cfg, images, engine=Engine(after))
        resumed.checkpoint.restore(path).assert_existing_objects_matched()
        assert int(resumed.step) == 1 and int(resumed.g_opt.iterations) == 1
        np.testing.assert_array_equal(resumed.generator.get_weights()[0], trainer.generator.get_weights()[0])
    finally:
        keras.mixed_precision.set_global_policy("float32")
