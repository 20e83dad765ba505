"""The training engine: own optimisers, run folder, resume after a kill, NaN stop, determinism."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import small_cfg

from gan_lib.base.progress import PACE_STEPS
from gan_lib.config import DEFAULT_PRESET, PRESETS, GANConfig
from gan_lib.data.storage import processed_path
from gan_lib.runs.folder import run_path, source_digest
from gan_lib.runs.logs import load_history
from gan_lib.training.engine import Engine
from gan_lib.training.loop import TrainingDiverged, train
from gan_lib.training.losses import LOSSES, Loss, bce_d_loss, r1_penalty
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


def test_a_short_run_writes_every_artefact(data_root, tmp_path):
    cfg = small_cfg(data_root, tmp_path, xla="on", tensorboard=True)
    run_dir = train(cfg)
    record = json.loads((run_dir / "config.json").read_text())
    assert record["config"] == {**cfg.to_dict(), "dataset": "phantom_yes_32px_h0.2_s0"}, "the dataset it trained on"
    assert record["data"]["dataset"] == "phantom_yes_32px_h0.2_s0" and len(record["data"]["train_sha256"]) == 64
    assert record["preset"] == "report" and record["overridden"] == {**cfg.overridden(), "dataset": "phantom_yes_32px_h0.2_s0"}
    assert record["overridden"]["tensorboard"] is True and record["overridden"]["xla"] == "on"
    assert "learning_rate" not in record["overridden"]
    assert record["data"]["synthetic"] is True and len(record["data"]["file_sha256"]) == 64
    assert {"tensorflow", "keras"} <= set(record["versions"]) and "gpus" in record["device"]
    assert record["versions"]["gan_lib_source_sha256"] == source_digest()
    history = load_history(run_dir)
    assert [r["step"] for r in history] == [2, 4, 6, 8, 10, 12]
    assert [r["epoch"] for r in history] == [1, 1, 1, 2, 2, 2]
    for name in ("reals.png", "epoch_001.png", "epoch_002.png", "z_fixed.npy"):
        assert (run_dir / "samples" / name).exists(), name
    assert (run_dir / "checkpoints" / "checkpoint").exists()
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    generator = keras.models.load_model(run_dir / "generator.keras")  # no training code needed
    assert generator.predict(np.load(run_dir / "samples" / "z_fixed.npy"), verbose=0).shape == (25, 32, 32, 1)


def test_the_recorded_source_hash_follows_every_change_to_gan_lib_and_nothing_else(tmp_path):
    package = Path(source_digest.__code__.co_filename).parents[1]
    copy = tmp_path / "gan_lib"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "notes.txt").write_text("not source")
    assert source_digest(copy) == source_digest()
    (copy / "scripts" / "bench.py").write_text((copy / "scripts" / "bench.py").read_text() + "\n")
    assert source_digest(copy) != source_digest()


def test_same_seed_same_history_other_seed_other_history(data_root, tmp_path):
    a = load_history(train(small_cfg(data_root, tmp_path, run_name="a", epochs=1)))
    b = load_history(train(small_cfg(data_root, tmp_path, run_name="b", epochs=1)))
    c = load_history(train(small_cfg(data_root, tmp_path, run_name="c", epochs=1, seed=1)))
    losses = lambda h: [(r["d_loss"], r["g_loss"]) for r in h]  # noqa: E731
    assert losses(a) == losses(b) and losses(a) != losses(c)


@pytest.mark.parametrize("recipe", [{}, {"preset": "report-ada-mbstd-r1-lean", "r1_every": 3}])
def test_an_interrupted_run_resumes_to_the_same_history(recipe, data_root, tmp_path):
    """Also with lazy R1 (here every 3rd step, so the resumed part has R1 steps of its own) and
    reused fakes."""
    whole = load_history(train(small_cfg(data_root, tmp_path, run_name="whole", **recipe)))
    cfg = small_cfg(data_root, tmp_path, run_name="parts", **recipe)
    train(cfg, stop_after_steps=7)  # dies after step 7; the last checkpoint is at step 4
    resumed = load_history(train(cfg))
    assert [r["step"] for r in resumed] == [r["step"] for r in whole], "no step repeated or lost"
    for name in ("d_loss", "g_loss"):
        np.testing.assert_allclose([r[name] for r in resumed], [r[name] for r in whole], rtol=1e-5)


def test_a_killed_subprocess_resumes_from_its_checkpoint(data_root, tmp_path):
    cfg = small_cfg(data_root, tmp_path, run_name="killed", epochs=1, steps_per_epoch=400, checkpoint_every=5)
    script = f"from gan_lib.config import GANConfig; from gan_lib.training.loop import train; " \
             f"train(GANConfig.from_overrides(**{cfg.to_dict()!r}))"
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = run_path(cfg) / "checkpoints" / "checkpoint"
    while not state.exists() and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert state.exists(), "the subprocess died before its first checkpoint"
    short = small_cfg(data_root, tmp_path, run_name="killed", epochs=1, steps_per_epoch=400, checkpoint_every=5)
    train(short, stop_after_steps=5)
    with (run_path(cfg) / "history.csv").open() as f:
        steps = [int(r["step"]) for r in csv.DictReader(f)]
    assert steps == sorted(set(steps)), "no duplicated history rows after the resume"
    assert steps[-1] % 2 == 0 and steps[-1] >= 10


def test_a_save_cut_short_leaves_the_previous_checkpoint_in_use(data_root, tmp_path):
    cfg = small_cfg(data_root, tmp_path, run_name="cut")
    train(cfg, stop_after_steps=5)  # checkpoint at step 4
    ckpt = run_path(cfg) / "checkpoints"
    # What a kill during the next save leaves: data files of step 8, the index not yet switched.
    (ckpt / "ckpt-8.index").write_bytes(b"partial")
    (ckpt / "ckpt-8.data-00000-of-00001").write_bytes(b"partial")
    history = load_history(train(cfg))
    assert [r["step"] for r in history] == [2, 4, 6, 8, 10, 12]


def test_a_nan_loss_stops_and_keeps_the_last_good_checkpoint(data_root, tmp_path, monkeypatch):
    cfg = small_cfg(data_root, tmp_path, run_name="nan")
    train(cfg, stop_after_steps=5)
    good = sorted(p.name for p in (run_path(cfg) / "checkpoints").glob("ckpt-*.index"))
    monkeypatch.setitem(LOSSES, "bce", Loss(lambda r, f, logits, real_label: np.float32("nan") * r[0, 0],
                                            lambda g, logits: np.float32("nan") * g[0, 0]))
    with pytest.raises(TrainingDiverged, match="last good checkpoint"):
        train(cfg)
    assert sorted(p.name for p in (run_path(cfg) / "checkpoints").glob("ckpt-*.index")) == good
    assert all(np.isfinite(r["d_loss"]) for r in load_history(run_path(cfg)))


def test_changed_settings_or_resume_false_refuse_an_existing_run(data_root, tmp_path):
    train(small_cfg(data_root, tmp_path, epochs=1))
    with pytest.raises(FileExistsError):
        train(small_cfg(data_root, tmp_path, epochs=1, resume=False))
    with pytest.raises(ValueError, match="learning_rate"):
        train(small_cfg(data_root, tmp_path, epochs=1, learning_rate=1e-3))


def test_a_run_folder_older_than_a_setting_counts_it_as_off(data_root, tmp_path):
    """A folder whose config.json predates a training option was trained without it, whatever the
    defaults are now: resuming with it off continues the run, asking for it refuses, and the
    evaluation reads it as off."""
    from gan_lib.evaluation.evaluate import run_config

    run_dir = train(small_cfg(data_root, tmp_path, epochs=1))
    record = json.loads((run_dir / "config.json").read_text())
    for option in ("minibatch_stddev", "r1_gamma", "r1_every", "ema_decay", "augment", "ada_target", "reuse_fakes",
                   "mirror", "symmetry_channel", "real_label", "label_every_block", "mismatched_labels"):
        del record["config"][option]
    (run_dir / "config.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match="minibatch_stddev"):
        train(small_cfg(data_root, tmp_path, epochs=2, minibatch_stddev=True))
    assert int(load_history(train(small_cfg(data_root, tmp_path, epochs=2)))[-1]["step"]) == 12, "resumed to the end"
    recorded = run_config(small_cfg(data_root, tmp_path))
    assert {k: getattr(recorded, k) for k in PRESETS["report"]} == PRESETS["report"]


def test_conditional_only_settings_hold_back_only_a_conditional_run_from_resuming(data_root, tmp_path):
    """label_every_block and mismatched_labels joined the default preset after runs were made with
    that preset. They shape only a class-conditional run, so a tumour-only default run whose folder
    predates them resumes under today's default; a conditional run trained without one refuses to
    continue with it, naming it."""
    from gan_lib.config import CONDITIONAL_ONLY
    from gan_lib.data.prepare import prepare_dataset
    from gan_lib.data.sources import fetch_raw
    from gan_lib.data.storage import save_processed

    default = dict(preset=DEFAULT_PRESET, kid_every=0, augment_p=0.5)
    run_dir = train(small_cfg(data_root, tmp_path, epochs=1, **default))
    record = json.loads((run_dir / "config.json").read_text())
    for setting in CONDITIONAL_ONLY:
        del record["config"][setting]
    (run_dir / "config.json").write_text(json.dumps(record))
    assert int(load_history(train(small_cfg(data_root, tmp_path, epochs=2, **default)))[-1]["step"]) == 12

    both_root = tmp_path / "both_data"
    both = GANConfig.from_overrides(data_source="phantom", data_root=str(both_root), image_size=32, classes="both")
    save_processed(prepare_dataset(both, fetch_raw(both)), processed_path(both))
    for setting in CONDITIONAL_ONLY:
        conditional = dict(default, run_name=f"both_{setting}", classes="both")
        train(small_cfg(both_root, tmp_path, epochs=1, **{**conditional, setting: False}))
        with pytest.raises(ValueError, match=setting):
            train(small_cfg(both_root, tmp_path, epochs=2, **conditional))


# The last commit before `preset` became a setting and the training engine was split by concern.
BEFORE_THE_SPLIT = "7e430191a14f64f50ebabffee7b6346271596b16"


def test_a_run_folder_made_before_the_split_resumes_and_evaluates(data_root, tmp_path):
    """A run trained by gan_lib as it was at BEFORE_THE_SPLIT (its code taken from this repository's
    history, run in its own process): today's code resumes it to the end and evaluates it."""
    from gan_lib.base.paths import PROJECT_ROOT
    from gan_lib.evaluation.evaluate import evaluate_run

    old_code = tmp_path / "old_code"
    old_code.mkdir()
    archive = subprocess.run(["git", "-C", str(PROJECT_ROOT), "archive", BEFORE_THE_SPLIT, "gan_lib"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(old_code)], input=archive, check=True)
    old_data = str(tmp_path / "old_data")  # its datasets were named otherwise
    env = {**os.environ, "PYTHONPATH": str(old_code)}
    fields = "import dataclasses, json; from gan_lib.config import GANConfig; " \
             "print(json.dumps([f.name for f in dataclasses.fields(GANConfig)]))"
    known_then = json.loads(subprocess.run([sys.executable, "-c", fields], cwd=old_code, env=env, check=True,
                                           capture_output=True, text=True).stdout)
    old = {k: v for k, v in small_cfg(old_data, tmp_path, epochs=1).to_dict().items() if k in known_then}
    old.update(xla=False, mixed_precision=False)  # the settings as they were then
    script = ("from gan_lib.config import GANConfig; from gan_lib.training import train; "  # the modules as they were
              "from gan_lib.data import prepare_dataset, save_processed; from gan_lib.sources import fetch_raw; "
              f"cfg = GANConfig.from_overrides(**{old!r}); "
              "save_processed(prepare_dataset(cfg, fetch_raw(cfg)), cfg.processed_path); train(cfg)")
    subprocess.run([sys.executable, "-c", script], cwd=old_code, env=env, check=True, capture_output=True)
    cfg = small_cfg(old_data, tmp_path, epochs=2)
    assert "preset" not in json.loads((run_path(cfg) / "config.json").read_text())["config"], "made by the old code"
    assert int(load_history(train(cfg))[-1]["step"]) == 12, "resumed from the old checkpoint to the end"
    assert json.loads((run_path(cfg) / "config.json").read_text())["preset"] == "report"
    evaluation = evaluate_run(GANConfig.from_overrides(
        run_name=cfg.run_name, output_root=cfg.output_root, n_generated=20, feature_extractor="random_cnn",
        kid_subset_size=10, kid_subsets=2, diversity_pairs=20, classifier_seeds=1, classifier_epochs=1))
    assert evaluation.metrics["config"]["preset"] == "report"


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


def test_a_bfloat16_run_records_its_engine_saves_a_float32_generator_and_resumes_as_if_uninterrupted(data_root, tmp_path):
    settings = dict(epochs=1, precision="mixed_bfloat16")
    whole = train(small_cfg(data_root, tmp_path, run_name="whole", **settings))
    train(small_cfg(data_root, tmp_path, run_name="cut", **settings), stop_after_steps=4)
    cut = train(small_cfg(data_root, tmp_path, run_name="cut", **settings))
    losses = lambda run: [(r["step"], r["d_loss"], r["g_loss"]) for r in load_history(run)]  # noqa: E731
    assert losses(cut) == losses(whole), "bit-identical, no step repeated or lost"
    record = json.loads((cut / "config.json").read_text())
    assert record["effective"]["engine"]["engine"] == {"precision": "mixed_bfloat16", "speed_layers": True, "xla": "none"}
    assert record["effective"]["engines"] == [{"from_step": 0, "engine": record["effective"]["engine"]["engine"]}]
    saved = keras.models.load_model(cut / "generator.keras")
    assert {layer.dtype_policy.name for layer in saved.layers} == {"float32"}
    assert saved(np.zeros((1, 100), "float32")).dtype == "float32"


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



@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_each_quality_preset_trains_and_writes_its_run_folder_with_health_checks(preset, data_root, tmp_path):
    run_dir = train(small_cfg(data_root, tmp_path, run_name=preset, kid_every=6, kid_images=20, preset=preset))
    for name in ("config.json", "history.csv", "health.csv", "best.json", "generator.keras", "generator_best.keras"):
        assert (run_dir / name).exists(), name
    with (run_dir / "health.csv").open() as f:
        health = list(csv.DictReader(f))
    assert [int(r["step"]) for r in health] == [6, 12]
    assert all(np.isfinite(float(r["kid"])) and float(r["diversity_ratio"]) > 0 for r in health)
    best = json.loads((run_dir / "best.json").read_text())
    assert best["kid"] == min(float(r["kid"]) for r in health)
    history = load_history(run_dir)
    assert all(0 <= r["d_acc_real"] <= 1 and 0 <= r["augment_p"] <= 1 for r in history)


def test_hinge_loss_needs_a_logit_discriminator():
    with pytest.raises(ValueError, match="logits"):
        GANTrainer(GANConfig.from_overrides(image_size=32, arch="report", loss="hinge"), np.zeros((2, 32, 32, 1)))


def trained_on_two_plain_classes(data_root, steps=150, **models):
    """A conditional trainer after `steps` steps on two classes that differ plainly (phantom heads,
    class 1, and the same heads dimmed, class 0), with its images and labels."""
    from gan_lib.data.storage import load_processed

    cfg = GANConfig.from_overrides(data_source="phantom", data_root=str(data_root), image_size=32, classes="both",
                                   **models)
    heads, _, _ = load_processed(processed_path(GANConfig.from_overrides(**{**cfg.to_dict(), "classes": "yes"})))
    images = np.concatenate([heads, (heads + 1.0) * 0.3 - 1.0])
    labels = np.concatenate([np.ones(len(heads)), np.zeros(len(heads))]).astype("int32")
    trainer = GANTrainer(cfg, images, labels=labels, engine=Engine(xla="whole"))
    for _ in range(steps):
        trainer.compiled_step()
    return trainer, images, labels


@pytest.mark.parametrize("models", [{"arch": "resize-sn", "loss": "hinge"}, {}], ids=["resize-sn", "default"])
def test_the_conditional_generator_obeys_its_label(data_root, models):
    """After training on two plainly different classes, a brightness threshold set on the real
    classes sorts the generated images by their label (150 steps: a start, not a finished generator)."""
    trainer, images, labels = trained_on_two_plain_classes(data_root, **models)
    threshold = (images[labels == 1].mean() + images[labels == 0].mean()) / 2
    noise = np.random.default_rng(1).standard_normal((64, trainer.cfg.noise_dim)).astype("float32")
    brightness = {label: np.asarray(trainer.generator([noise, np.full(64, label, "int32")], training=False)).mean((1, 2, 3))
                  for label in (0, 1)}
    accuracy = ((brightness[1] > threshold).mean() + (brightness[0] <= threshold).mean()) / 2
    assert accuracy > 0.7, accuracy  # chance 0.5; measured: 1.0 (default, also without mismatched_labels), 0.84 (resize-sn), 0.87 without either


def test_mismatched_labels_teach_d_that_a_real_scan_under_the_other_label_is_generated(data_root):
    """With `mismatched_labels`, D's verdict on a real image turns on its label: every training image
    scores higher under its own class than under the other, and under the other D calls it generated.
    (Measured without the setting, same 150 steps: 80 % score higher, means 0.56 against 0.49.)"""
    trainer, images, labels = trained_on_two_plain_classes(data_root, mismatched_labels=True)
    right, wrong = (np.asarray(trainer.discriminator([images, label], training=False))[:, 0]
                    for label in (labels, 1 - labels))
    assert (right > wrong).all()
    assert wrong.mean() < 0.25 < right.mean(), (right.mean(), wrong.mean())  # measured: 0.69 and 0.06


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


def test_the_stock_layer_trainer_is_the_same_function_and_the_run_records_its_layers(data_root, tmp_path):
    cfg = GANConfig.from_overrides(image_size=32, augment="", ema_decay=0.0)
    images = np.random.default_rng(0).uniform(-1, 1, (16, 32, 32, 1)).astype(np.float32)
    fast, stock = GANTrainer(cfg, images), GANTrainer(cfg, images, engine=Engine(speed_layers=False))
    assert {type(layer).__name__ for layer in fast.generator.layers} >= {"PhaseConv2DTranspose"}
    assert not {type(layer).__name__ for model in (stock.generator, stock.discriminator) for layer in model.layers} \
        & {"PhaseConv2DTranspose", "PhaseGradConv2D", "NarrowConv2D"}
    noise = np.random.default_rng(1).standard_normal((4, cfg.noise_dim)).astype(np.float32)
    np.testing.assert_allclose(fast.generator(noise, training=False), stock.generator(noise, training=False), atol=1e-5)
    record = json.loads((train(small_cfg(data_root, tmp_path, epochs=1, speed_layers="off")) / "config.json").read_text())
    assert record["effective"]["engine"]["engine"]["speed_layers"] is False


def test_training_prints_compile_time_then_speed_and_eta_before_its_first_epoch_ends(data_root, tmp_path, capsys):
    train(small_cfg(data_root, tmp_path, epochs=2, steps_per_epoch=30))
    out = capsys.readouterr().out
    assert "compiled the training step and ran it once in" in out
    line = next(l for l in out.splitlines() if l.startswith("speed here:"))
    assert f"(median of {PACE_STEPS} steps timed)" in line and "the whole schedule of 60 steps takes" in line


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


def test_a_resumed_run_records_which_engine_computed_which_steps(data_root, tmp_path):
    train(small_cfg(data_root, tmp_path, run_name="moved", epochs=1), stop_after_steps=4)
    run_dir = train(small_cfg(data_root, tmp_path, run_name="moved", epochs=1, xla="on"))
    engines = json.loads((run_dir / "config.json").read_text())["effective"]["engines"]
    assert [(e["from_step"], e["engine"]["xla"]) for e in engines] == [(0, "none"), (4, "whole")]
