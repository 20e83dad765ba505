"""The training loop and its run folder: every artefact, resume after a kill, NaN stop, determinism,
refusals, old run folders, engines recorded."""

from __future__ import annotations

import csv
import json
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
from old_gan_lib import run_old_gan_lib

from gan_lib.base.progress import PACE_STEPS
from gan_lib.config import DEFAULT_PRESET, PRESETS, GANConfig
from gan_lib.data.storage import processed_path
from gan_lib.records.migrations import EVALUATION_VERSION
from gan_lib.runs.folder import source_digest
from gan_lib.runs.location import run_path
from gan_lib.runs.logs import load_history
from gan_lib.training.engine import Engine
from gan_lib.training.loop import TrainingDiverged, train
from gan_lib.training.losses import LOSSES, Loss
from gan_lib.training.monitor import first_candidate, replay_stopping
from gan_lib.training.step import GANTrainer

pytestmark = pytest.mark.slow  # trains, or starts processes or notebooks: not in `make test-fast`


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


def test_a_replayed_stopping_rule_stops_where_the_best_went_stale_and_keeps_that_best():
    """A first check that stays best for a while stops a small N early with its generator, unless
    checks before best_from_step are left out; a NaN check counts but never wins; N=0 never stops."""
    figures = [1.9, 2.5, 2.2, 1.8, 1.85, np.nan, 1.7]
    checks = [{"step": 500 * (i + 1), "kid_held_out": v} for i, v in enumerate(figures)]
    assert replay_stopping(checks, "kid_held_out", 2) == (1500, 500)
    assert replay_stopping(checks, "kid_held_out", 2, from_step=1000) == (3000, 2000)  # best_from_step=1000
    assert replay_stopping(checks, "kid_held_out", 3) == (None, 3500)
    assert replay_stopping(checks[3:], "kid_held_out", 2) == (3000, 2000)
    assert replay_stopping(checks, "kid_held_out", 0) == (None, 3500)


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
    predates them resumes under today's default; a conditional run trained without them refuses to
    continue with either one turned on, naming it."""
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
    without = dict(default, run_name="both", classes="both", **{setting: False for setting in CONDITIONAL_ONLY})
    train(small_cfg(both_root, tmp_path, epochs=1, **without))
    for setting in CONDITIONAL_ONLY:  # the refusal comes before anything is written
        with pytest.raises(ValueError, match=setting):
            train(small_cfg(both_root, tmp_path, epochs=2, **{**without, setting: True}))


# The oldest records a run folder may hold (before presets were recorded and datasets named), and
# main's last before records had a schema_version: tests/fixtures/records has every shape between.
@pytest.mark.parametrize("commit", ["7e43019", "0706371"])
def test_a_run_folder_an_older_gan_lib_made_resumes_and_evaluates(commit, data_root, tmp_path):
    """A run trained by gan_lib as it was at `commit` (its code taken from this repository's
    history, run in its own process): today's code resumes it to the end and evaluates it."""
    from gan_lib.evaluation.evaluate import evaluate_run

    old_data = str(tmp_path / "old_data")  # datasets were named otherwise then
    settings = {**small_cfg(old_data, tmp_path, epochs=1).to_dict(), "mixed_precision": False}  # float32, as now
    run_old_gan_lib(commit, settings, tmp_path / "old_code")
    cfg = small_cfg(old_data, tmp_path, epochs=2)
    assert "schema_version" not in json.loads((run_path(cfg) / "config.json").read_text()), "made by the old code"
    assert int(load_history(train(cfg))[-1]["step"]) == 12, "resumed from the old checkpoint to the end"
    record = json.loads((run_path(cfg) / "config.json").read_text())
    assert (record["schema_version"], record["preset"]) == (2, "report")
    evaluation = evaluate_run(GANConfig.from_overrides(
        run_name=cfg.run_name, output_root=cfg.output_root, n_generated=20, feature_extractor="random_cnn",
        kid_subset_size=10, kid_subsets=2, diversity_pairs=20, classifier_seeds=1, classifier_epochs=1))
    assert evaluation.record.config["preset"] == "report" and evaluation.record.schema_version == EVALUATION_VERSION
    assert evaluation.record.generator_step == 12, "generator.json, written when today's code finished the run"


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


# The presets whose settings take a path through the step that no other here takes: report-ada and
# report-ada-mbstd are the default without some of its settings, -gamma4 the default with another R1
# weight (test_quality.py builds every preset's models).
TRAINED_PRESETS = ["report", DEFAULT_PRESET, "report-ada-mbstd-r1-lean", "report-ada-mbstd-r1-sym", "resize-sn"]


@pytest.mark.parametrize("preset", TRAINED_PRESETS)
def test_each_quality_preset_trains_and_writes_its_run_folder_with_health_checks(preset, data_root, tmp_path):
    cfg = small_cfg(data_root, tmp_path, run_name=preset, kid_every=6, kid_images=20, preset=preset)
    run_dir = train(cfg)
    for name in ("config.json", "history.csv", "health.csv", "best.json", "generator.keras", "generator_best.keras"):
        assert (run_dir / name).exists(), name
    with (run_dir / "health.csv").open() as f:
        health = list(csv.DictReader(f))
    assert [int(r["step"]) for r in health] == [6, 12]
    assert all(np.isfinite(float(r["kid"])) and float(r["diversity_ratio"]) > 0 for r in health)
    # by default, the lowest KID against the held-out scans among the checks from best_from_step (here the run's end) on
    best = json.loads((run_dir / "best.json").read_text())
    candidates = [float(r["kid_held_out"]) for r in health if int(r["step"]) >= first_candidate(cfg)]
    assert first_candidate(cfg) == 12 and best["by"] == "kid_held_out" and best["kid_held_out"] == min(candidates)
    history = load_history(run_dir)
    assert all(0 <= r["d_acc_real"] <= 1 and 0 <= r["augment_p"] <= 1 for r in history)


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


def test_a_resumed_run_records_which_engine_computed_which_steps(data_root, tmp_path):
    train(small_cfg(data_root, tmp_path, run_name="moved", epochs=1), stop_after_steps=4)
    run_dir = train(small_cfg(data_root, tmp_path, run_name="moved", epochs=1, xla="on"))
    engines = json.loads((run_dir / "config.json").read_text())["effective"]["engines"]
    assert [(e["from_step"], e["engine"]["xla"]) for e in engines] == [(0, "none"), (4, "whole")]
