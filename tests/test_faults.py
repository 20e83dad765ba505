"""Faults on purpose: kills, damaged checkpoints, failing writes, two writers, swapped data, bad
settings and shell metacharacters. Each test asserts what the user sees and that nothing earlier
was lost. The catalogue table in docs/faults.md names these tests."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import encode, head_image, small_cfg, write

from gan_lib.base.paths import PROJECT_ROOT
from gan_lib.config import GANConfig
from gan_lib.data.class_folders import DataError
from gan_lib.data.prepare import prepare_dataset
from gan_lib.data.sources import RawSource, fetch_raw
from gan_lib.data.storage import (LATEST, choose_dataset, dataset_name, load_processed, manifest_path, processed_path,
                                  save_processed)
from gan_lib.evaluation.evaluate import evaluate_run
from gan_lib.records.evaluation import read_best, read_final_step
from gan_lib.records.run import RunFolderError
from gan_lib.runs.generate import run_source
from gan_lib.runs.location import run_path
from gan_lib.runs.logs import load_history
from gan_lib.training.loop import train
from gan_lib.training.monitor import first_candidate, replay_stopping

pytestmark = pytest.mark.slow  # trains, or starts processes or notebooks: not in `make test-fast`


def rows(run_dir, name="history.csv"):
    """A CSV log without its wall-clock column, which differs between any two runs."""
    return [{k: v for k, v in r.items() if k != "wall_time_s"} for r in load_history(run_dir, name)]


def training_command(cfg) -> list[str]:
    """train(cfg) in a Python process of its own."""
    return [sys.executable, "-c", f"from gan_lib.config import GANConfig; from gan_lib.training.loop import train; "
            f"train(GANConfig(**{cfg.to_dict()!r}))"]


def train_in_child(cfg, limit_bytes: int | None = None) -> subprocess.CompletedProcess:
    """train(cfg) in a process of its own, optionally unable to write any file over `limit_bytes`
    (a write past it fails with EFBIG, as a full disk fails with ENOSPC)."""

    def limit():
        if limit_bytes is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return subprocess.run(training_command(cfg), capture_output=True, text=True, preexec_fn=limit, timeout=300)


@pytest.fixture(scope="module")
def uninterrupted(data_root, tmp_path_factory) -> Path:
    """small_cfg's 12-step run, trained once without a stop: what every resumed run must equal."""
    return train(small_cfg(data_root, tmp_path_factory.mktemp("uninterrupted"), run_name="whole"))


@pytest.fixture(scope="module")
def uninterrupted_18(data_root, tmp_path_factory) -> Path:
    """The same for 18 steps (3 epochs)."""
    return train(small_cfg(data_root, tmp_path_factory.mktemp("uninterrupted_18"), run_name="whole", epochs=3))


@pytest.fixture(scope="module")
def finished_run(data_root, tmp_path_factory) -> Path:
    """small_cfg's one-epoch run, trained once for the tests that need a finished run and copy it."""
    return train(small_cfg(data_root, tmp_path_factory.mktemp("finished"), run_name="finished", epochs=1))


def finished_copy(finished_run: Path, tmp_path: Path, name: str) -> Path:
    """A copy of the finished run as small_cfg(..., tmp_path, run_name=name, epochs=1)'s folder: a
    copied run folder is a run of its own where it is."""
    return Path(shutil.copytree(finished_run, tmp_path / "runs" / name, symlinks=True))


# --- checkpoints -------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["truncated", "bit-flipped"])
def test_a_damaged_newest_checkpoint_is_skipped_and_the_one_before_resumes(data_root, uninterrupted_18, tmp_path, damage,
                                                                           capsys):
    whole = rows(uninterrupted_18)
    cfg = small_cfg(data_root, tmp_path, run_name="damaged", epochs=3)
    train(cfg, stop_after_steps=13)  # checkpoints at 4, 6 (epoch end), 8, 12
    data = run_path(cfg) / "checkpoints" / "ckpt-12.data-00000-of-00001"
    content = bytearray(data.read_bytes())
    if damage == "truncated":
        data.write_bytes(content[: len(content) // 2])
    else:
        content[len(content) // 2] ^= 0xFF
        data.write_bytes(bytes(content))
    capsys.readouterr()
    assert rows(train(cfg)) == whole, "resumed from ckpt-8 to the same history as an uninterrupted run"
    out = capsys.readouterr().out
    assert "skipped ckpt-12" in out and "Resuming damaged from step 8" in out
    assert not list((run_path(cfg) / "checkpoints").glob("ckpt-12.*_temp"))


def test_a_failing_write_during_a_save_stops_cleanly_and_the_next_run_resumes(data_root, uninterrupted, tmp_path):
    cfg = small_cfg(data_root, tmp_path, run_name="efbig")
    train(cfg, stop_after_steps=5)  # ckpt-4
    ckpt_dir = run_path(cfg) / "checkpoints"
    biggest = max(p.stat().st_size for p in ckpt_dir.iterdir())
    failed = train_in_child(cfg, limit_bytes=biggest // 2)
    assert failed.returncode != 0 and "File too large" in failed.stderr
    assert sorted(p.name for p in ckpt_dir.glob("ckpt-*.index")) == ["ckpt-4.index"], "the last good one is kept"
    assert rows(train(cfg)) == rows(uninterrupted)
    assert not list(ckpt_dir.glob("*_temp")), "the interrupted save's temp folder is gone"


def test_a_run_with_no_checkpoint_that_restores_is_refused_with_the_way_out(data_root, tmp_path):
    cfg = small_cfg(data_root, tmp_path, run_name="allbad")
    train(cfg, stop_after_steps=5)
    for data in (run_path(cfg) / "checkpoints").glob("ckpt-*.data-*"):
        data.write_bytes(b"")
    with pytest.raises(RunFolderError, match="No checkpoint .* restores.*move the run folder away"):
        train(cfg)
    assert list((run_path(cfg) / "checkpoints").glob("ckpt-4.*")), "nothing deleted when nothing restores"


# --- kills -------------------------------------------------------------------------------------


def test_kill_9_during_preprocessing_leaves_the_previous_dataset_whole(tmp_path):
    cfg = GANConfig.from_overrides(data_source="phantom", data_root=str(tmp_path), image_size=256)
    path = save_processed(prepare_dataset(cfg, fetch_raw(cfg)), processed_path(cfg))
    before = path.read_bytes(), (tmp_path / "processed" / LATEST).read_text()
    script = ("from gan_lib.config import GANConfig; from gan_lib.data.prepare import prepare_dataset; "
              "from gan_lib.data.storage import save_processed; from gan_lib.data.sources import fetch_raw; "
              f"cfg = GANConfig.from_overrides(data_source='phantom', data_root={str(tmp_path)!r}, image_size=256); "
              "save_processed(prepare_dataset(cfg, fetch_raw(cfg)), processed_path(cfg))")
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = ""
    while "preprocess" not in seen:  # the progress bar: decoding has begun
        char = child.stdout.read(1)
        assert char, f"ended before preprocessing: {seen}"
        seen += char
    child.kill()
    child.wait()
    assert (path.read_bytes(), (tmp_path / "processed" / LATEST).read_text()) == before
    assert not list((tmp_path / "processed").glob("*.tmp*"))


# --- one writer per run folder -----------------------------------------------------------------


def test_a_second_writer_is_refused_and_a_killed_one_leaves_nothing_stuck(data_root, tmp_path):
    cfg = small_cfg(data_root, tmp_path, run_name="busy", epochs=1, steps_per_epoch=100000, checkpoint_every=50)
    child = subprocess.Popen(training_command(cfg), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not (run_path(cfg) / "history.csv").exists() and time.time() < deadline:
            time.sleep(0.5)
        with pytest.raises(RunFolderError, match=rf"is in use \(pid {child.pid} on "):
            train(cfg)
        with pytest.raises(RunFolderError, match=rf"is in use \(pid {child.pid} on "):  # 06 on a run training
            evaluate_run(cfg)
        report = make("report", f"RUN={cfg.run_name}", f"OUTPUT_ROOT={cfg.output_root}", "DRY_RUN=1")
        assert report.returncode != 0 and f"is in use (pid {child.pid} on " in report.stderr
        assert not (run_path(cfg) / "metrics.json").exists()
    finally:
        child.kill()
        child.wait()
    assert (run_path(cfg) / "history.csv").read_text().count("epoch,step") <= 1, "one header: one writer"
    resumed = train(small_cfg(data_root, tmp_path, run_name="busy", epochs=1, steps_per_epoch=100000,
                              checkpoint_every=50), stop_after_steps=1)
    steps = [r["step"] for r in load_history(resumed)]
    assert steps == sorted(set(steps)), "after the kill: no duplicated or out-of-order rows"


# --- the run folder's record -------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["missing", "empty"])
def test_a_missing_or_empty_config_json_is_refused_with_its_path(data_root, tmp_path, damage):
    cfg = small_cfg(data_root, tmp_path, run_name="noconfig")
    train(cfg, stop_after_steps=5)
    config = run_path(cfg) / "config.json"
    config.unlink() if damage == "missing" else config.write_text("")
    with pytest.raises(RunFolderError, match=f"{config}.* missing or unreadable"):
        train(small_cfg(data_root, tmp_path, run_name="noconfig", learning_rate=0.005, batch_size=8))
    assert not config.exists() or config.read_text() == "", "nothing rewritten with settings that did not take effect"


def test_a_run_whose_data_changed_is_refused_on_resume_and_evaluation(tmp_path):

    data = GANConfig.from_overrides(data_source="phantom", data_root=str(tmp_path / "data"), image_size=32)
    path = save_processed(prepare_dataset(data, fetch_raw(data)), processed_path(data))
    cfg = small_cfg(tmp_path / "data", tmp_path, run_name="swap")
    train(cfg, stop_after_steps=5)
    other = GANConfig.from_overrides(data_source="phantom", data_root=str(tmp_path / "other"), image_size=32, seed=1)
    made = save_processed(prepare_dataset(other, fetch_raw(other)), processed_path(other))
    for source, target in ((made, path), (manifest_path(made), manifest_path(path))):  # put in its place by hand
        os.replace(source, target)
    with pytest.raises(RunFolderError, match=r"swap trained on .*holds other data"):
        train(cfg)
    with pytest.raises(RunFolderError, match="holds other data"):
        evaluate_run(GANConfig.from_overrides(run_name="swap", output_root=cfg.output_root, n_generated=10,
                                              feature_extractor="random_cnn"))


def test_a_resumed_run_keeps_its_own_dataset_when_another_was_written_since(tmp_path):
    cfg = small_cfg(tmp_path / "data", tmp_path, run_name="own", data_source="phantom", image_size=32)
    first = save_processed(prepare_dataset(cfg, fetch_raw(cfg)), processed_path(cfg))
    train(small_cfg(tmp_path / "data", tmp_path, run_name="own"), stop_after_steps=5)
    later = GANConfig.from_overrides(data_source="phantom", data_root=str(tmp_path / "data"), image_size=48)
    save_processed(prepare_dataset(later, fetch_raw(later)), processed_path(later))  # now the latest
    run_dir = train(small_cfg(tmp_path / "data", tmp_path, run_name="own"))
    record = json.loads((run_dir / "config.json").read_text())
    assert record["data"]["dataset"] == first.stem and record["config"]["image_size"] == 32
    assert [r["step"] for r in load_history(run_dir)] == [2, 4, 6, 8, 10, 12]


def test_a_dataset_is_never_overwritten_by_different_data_under_its_name(tmp_path, raw_root):
    cfg = GANConfig.from_overrides(data_source="local", data_dir=str(raw_root), data_root=str(tmp_path), image_size=64,
                                   holdout=0.0)
    raw = RawSource(raw_root, "local", False, str(raw_root))
    path = save_processed(prepare_dataset(cfg, raw), processed_path(cfg))
    again = save_processed(prepare_dataset(cfg, raw), processed_path(cfg))  # the same data: fine
    assert again == path
    write(raw_root / "yes" / "new.png", encode(head_image(seed=77, centre=(140, 120))))
    with pytest.raises(DataError, match="holds another dataset made with the same settings"):
        save_processed(prepare_dataset(cfg, raw), processed_path(cfg))
    other = GANConfig.from_overrides(data_source="local", data_dir=str(tmp_path / "elsewhere"), image_size=64)
    assert dataset_name(other) != dataset_name(cfg), "another folder gives another name"


def test_training_takes_the_dataset_02_wrote_last_and_says_which(tmp_path, capsys):
    for size in (32, 48):
        cfg = GANConfig.from_overrides(data_source="phantom", data_root=str(tmp_path), image_size=size)
        save_processed(prepare_dataset(cfg, fetch_raw(cfg)), processed_path(cfg))
    capsys.readouterr()
    chosen = choose_dataset(GANConfig.from_overrides(data_root=str(tmp_path)))
    assert chosen.stem == "phantom_yes_48px_h0.2_s0" and "the one 02 last wrote" in capsys.readouterr().out
    with pytest.raises(DataError, match="dataset='nope'.*phantom_yes_32px"):
        choose_dataset(GANConfig.from_overrides(data_root=str(tmp_path), dataset="nope"))
    with pytest.raises(DataError, match="No dataset in .*run 02_preprocess"):
        choose_dataset(GANConfig.from_overrides(data_root=str(tmp_path / "empty")))


# --- settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize("overrides, message", [
    (dict(learning_rate=-0.01), "learning_rate"), (dict(beta_1=2.0), "beta_1"),
    (dict(learning_rate=float("nan")), "finite"), (dict(run_name=".."), "run_name"), (dict(run_name="."), "run_name"),
])
def test_settings_that_make_no_sense_are_refused_before_any_folder(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        GANConfig.from_overrides(output_root=str(tmp_path), **overrides)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("overrides, message", [(dict(holdout=0.999), "holds out all"), (dict(n_images=100000), "at most")])
def test_a_split_or_subset_that_cannot_be_made_is_refused_with_the_numbers(tmp_path, overrides, message):
    cfg = GANConfig.from_overrides(data_source="phantom", data_root=str(tmp_path), image_size=32, **overrides)
    with pytest.raises(DataError, match=message):
        prepare_dataset(cfg, fetch_raw(cfg))
    assert not (tmp_path / "processed").exists()


def test_a_run_that_diverged_before_its_first_checkpoint_can_start_over(data_root, tmp_path, capsys):
    cfg = small_cfg(data_root, tmp_path, run_name="early")
    train(cfg, stop_after_steps=3)  # no checkpoint yet, as a run stopped by NaN at step 3 leaves it
    assert (run_path(cfg) / "config.json").exists()
    history = rows(train(small_cfg(data_root, tmp_path, run_name="early", learning_rate=1e-4)))
    assert "holds no checkpoint: starting it over" in capsys.readouterr().out
    assert [r["step"] for r in history] == [2, 4, 6, 8, 10, 12]


# --- logs --------------------------------------------------------------------------------------


def test_a_torn_last_line_of_history_csv_is_dropped_and_the_run_resumes(data_root, uninterrupted, tmp_path, capsys):
    whole = rows(uninterrupted)
    cfg = small_cfg(data_root, tmp_path, run_name="torn")
    train(cfg, stop_after_steps=9)
    history = run_path(cfg) / "history.csv"
    history.write_text(history.read_text() + "10,0.69")  # a row cut short by a kill
    assert rows(train(cfg)) == whole
    assert "incomplete row" in capsys.readouterr().out


def test_a_run_stops_once_its_best_generator_stops_improving_and_stays_stopped_until_told(data_root, tmp_path,
                                                                                         capsys):
    """stop_after_checks=1, and a learning rate so small that the checks' figures barely move: the run
    stops at the first check no better than the best before it, checkpointed and with its
    generator.keras, and each check's line names the best generator's step. Resumed, it stops again at
    once; stop_after_checks=0 trains on to the end, and best_from_step=6 then picks the best afresh
    among the checks still to come from step 6 on (unless it already is one from then)."""
    settings = dict(kid_every=2, kid_images=10, learning_rate=1e-12, best_from_step=0)
    run_dir = train(small_cfg(data_root, tmp_path, stop_after_checks=1, **settings))
    checks = [(int(r["step"]), r["kid_held_out"]) for r in load_history(run_dir, "health.csv")]
    stop = next(step for i, (step, kid) in enumerate(checks) if i and kid >= min(k for _, k in checks[:i]))
    assert checks[-1][0] == stop < 12 and load_history(run_dir)[-1]["step"] == stop
    assert replay_stopping(load_history(run_dir, "health.csv"), "kid_held_out", 1)[0] == stop  # the replay agrees
    out, best = capsys.readouterr().out, read_best(run_dir)
    assert f"STOPPED EARLY at step {stop} of 12" in out and (run_dir / "generator.keras").exists()
    assert f"step {stop}: KID" in out and f"; generator_best.keras: step {best.step} (kid_held_out {best.value:.3f})" in out
    assert (run_dir / "checkpoints" / f"ckpt-{stop}.index").exists()
    assert read_final_step(run_dir) == run_source(run_dir)["step"] == stop, "generator.keras is the stop's, not step 12's"
    train(small_cfg(data_root, tmp_path, stop_after_checks=1, **settings))
    assert f"STOPPED EARLY at step {stop} of 12" in capsys.readouterr().out and load_history(run_dir)[-1]["step"] == stop
    train(small_cfg(data_root, tmp_path, stop_after_checks=0, **{**settings, "best_from_step": 6}))
    assert load_history(run_dir)[-1]["step"] == 12 == read_final_step(run_dir)
    checks = [(int(r["step"]), r["kid_held_out"]) for r in load_history(run_dir, "health.csv")]
    if best.step < 6:  # the checks still to come from step 6 on pick it
        assert read_best(run_dir).step == min((kid, step) for step, kid in checks if step >= 6 and step > stop)[1]
        assert f"it is picked afresh among the checks from step {max(stop + 1, 6)} on" in capsys.readouterr().out
    else:
        assert read_best(run_dir).step == min((kid, step) for step, kid in checks if step >= best.step)[1]


def test_health_csv_after_a_resume_equals_an_uninterrupted_run(raw_root, tmp_path):
    """A conditional run's, so its label check too: the resumed run checks with the classifier the
    first part trained and kept, against the same held-out scans (of raw_root's ten heads, two)."""
    settings = dict(data_source="local", data_dir=str(raw_root), classes="both", epochs=2, steps_per_epoch=6,
                    kid_every=6, kid_images=10, checkpoint_every=4, log_every=1, classifier_epochs=2, best_by="kid")
    both = small_cfg(tmp_path / "data", tmp_path, **settings)
    save_processed(prepare_dataset(both, fetch_raw(both)), processed_path(both))
    whole = rows(train(small_cfg(tmp_path / "data", tmp_path, run_name="h-whole", **settings)), "health.csv")
    cfg = small_cfg(tmp_path / "data", tmp_path, run_name="h-parts", **settings)
    train(cfg, stop_after_steps=9)  # checkpoint at 8; the check at 12 averages rows 7-12
    assert rows(train(cfg), "health.csv") == whole
    assert {r["label_accuracy_held_out"] for r in whole} == {whole[0]["label_accuracy_held_out"]}, "one baseline"
    assert all(0 <= r[k] <= 1 for r in whole for k in ("label_accuracy", "label_accuracy_held_out",
                                                       "no_tumour_called_tumour", "no_tumour_called_tumour_held_out"))
    assert all(np.isfinite(r["kid_held_out"]) for r in whole)
    best = read_best(run_path(cfg))  # best_by="kid": the lowest KID against the training scans, as before
    candidates = [r for r in whole if r["step"] >= first_candidate(cfg)]  # from best_from_step, here the run's end, on
    assert (best.by, best.step) == ("kid", min(candidates, key=lambda r: r["kid"])["step"])


# --- generated images --------------------------------------------------------------------------


@pytest.mark.parametrize("arguments, message", [
    (["--n", "-5"], "argument --n: -5: must be at least 1"),
    (["--upscale", "-1"], "argument --upscale"),
    (["--out", "/proc/forbidden"], "argument --out: /proc/forbidden: cannot be made"),
    (["--seed", "-1"], "argument --seed: -1: must be 0 or more"),
])
def test_generate_refuses_bad_arguments_in_one_line_before_any_work(tmp_path, arguments, message):
    base = {"--run": str(tmp_path), "--out": str(tmp_path / "out"), "--n": "3"}
    base.update(dict(zip(arguments[::2], arguments[1::2])))
    done = subprocess.run([sys.executable, "-m", "gan_lib", "generate", *sum(base.items(), ())],
                          capture_output=True, text=True)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


def test_generate_on_a_full_disk_fails_loudly_and_lists_no_broken_image(finished_run, tmp_path):
    """A PNG that cannot be written whole stops generate (a full disk fails with ENOSPC as the file
    size limit here fails with EFBIG); images.csv, written last, is never left listing it."""
    run_dir = finished_copy(finished_run, tmp_path, "full")
    out = tmp_path / "made"

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (300, 300))  # smaller than any of its PNGs

    done = subprocess.run([sys.executable, "-m", "gan_lib", "generate", "--run", str(run_dir), "--n", "3",
                           "--out", str(out)], capture_output=True, text=True, preexec_fn=limit, timeout=300)
    assert done.returncode == 1 and "stopped: [Errno 27] File too large" in done.stderr
    assert "Traceback" not in done.stderr
    assert list(out.iterdir()) == [], "no PNG, no images.csv, no temporary file"


def test_a_truncated_generator_keras_says_what_to_do(data_root, finished_run, tmp_path):
    from gan_lib.runs.generate import load_generator

    run_dir = finished_copy(finished_run, tmp_path, "gen")
    saved = run_dir / "generator.keras"
    saved.write_bytes(saved.read_bytes()[:1000])
    with pytest.raises(ValueError, match="damaged.*run 04_train again with this run_name"):
        load_generator(run_dir)
    train(small_cfg(data_root, tmp_path, run_name="gen", epochs=1))  # the finished run writes it anew
    assert load_generator(run_dir).output_shape == (None, 32, 32, 1)


# --- make --------------------------------------------------------------------------------------


def make(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-s", "-C", str(PROJECT_ROOT), *arguments], capture_output=True, text=True,
                          timeout=120)


WEIRD = "a b/`touch pwned1`/$(shell touch pwned2)/$HOME;touch pwned3 \"q's\" ünï"


def test_make_hands_every_parameter_value_to_the_notebooks_unchanged(tmp_path):
    done = make("data", "DRY_RUN=1", "DATA_SOURCE=local", f"DATA_DIR={WEIRD}", f"DATA_ROOT={WEIRD}")
    assert done.returncode == 0, done.stderr
    for line in done.stdout.splitlines()[:2]:
        params = json.loads(line.split(": ", 1)[1])
        assert params["data_dir"] == WEIRD and params["data_root"] == WEIRD
    assert not list(PROJECT_ROOT.glob("pwned*")) and not list(PROJECT_ROOT.glob("*=*"))


@pytest.mark.parametrize("arguments, message", [
    (["data", "SEED=0; touch pwned"], "SEED='0; touch pwned': expected int"),
    (["report", "RUN=../../../x"], "a plain folder or file name"),
    (["report", "RUN=doesnotexist"], "no run folder at"),
])
def test_make_fails_loudly_and_writes_nothing_for_a_bad_value(arguments, message):
    done = make(*arguments, "DRY_RUN=1")
    assert done.returncode != 0 and message in done.stderr
    assert not list(PROJECT_ROOT.glob("pwned*")) and not (PROJECT_ROOT / "outputs" / "runs" / "doesnotexist").exists()


# --- input files -------------------------------------------------------------------------------


def prepared(root, tmp_path, **overrides):
    cfg = GANConfig.from_overrides(data_source="local", data_dir=str(root), data_root=str(tmp_path / "d"),
                                   image_size=64, classes="both", **overrides)
    return prepare_dataset(cfg, RawSource(root, "local", False, str(root)))


def reasons(result) -> dict:
    return {s["path"]: s["reason"] for s in result.manifest.skipped}


def test_a_cut_short_jpeg_with_an_end_marker_is_skipped(raw_root, tmp_path):
    whole = encode(head_image(seed=50), ".jpg")
    write(raw_root / "yes" / "half.jpg", whole[: len(whole) // 2] + b"\xff\xd9")
    assert reasons(prepared(raw_root, tmp_path))["yes/half.jpg"].startswith("truncated JPEG (libjpeg: premature end")


def test_a_blank_image_is_skipped(raw_root, tmp_path):
    write(raw_root / "no" / "white.png", encode(np.full((200, 200), 255, np.uint8)))
    assert reasons(prepared(raw_root, tmp_path))["no/white.png"].startswith("blank image")


def test_a_fifo_is_skipped_without_being_opened(raw_root, tmp_path):
    os.mkfifo(raw_root / "yes" / "pipe.jpg")
    child = subprocess.run([sys.executable, "-c", (
        "import sys; sys.path.insert(0, 'tests'); from pathlib import Path; from gan_lib.config import GANConfig; "
        "from gan_lib.data.prepare import prepare_dataset; from gan_lib.data.sources import RawSource; "
        f"root = Path({str(raw_root)!r}); cfg = GANConfig.from_overrides(data_source='local', data_dir=str(root), "
        f"data_root={str(tmp_path)!r}, image_size=64); r = prepare_dataset(cfg, RawSource(root, 'local', False, str(root))); "
        "print([s['reason'] for s in r.manifest.skipped if s['path'] == 'yes/pipe.jpg'])")],
        capture_output=True, text=True, timeout=120, cwd=PROJECT_ROOT)
    assert "not a regular file (a FIFO)" in child.stdout, child.stderr


def test_the_same_scan_re_encoded_is_kept_once_so_it_cannot_sit_on_both_sides_of_the_split(raw_root, tmp_path):
    scan = head_image(seed=60, centre=(130, 170))
    write(raw_root / "yes" / "scan.png", encode(scan))
    write(raw_root / "yes" / "scan_again.jpg", encode(scan, ".jpg"))
    result = prepared(raw_root, tmp_path, holdout=0.5)
    kept = [e["source_path"] for e in result.manifest.images]
    assert ("yes/scan.png" in kept) != ("yes/scan_again.jpg" in kept)
    assert "near-duplicate of yes/scan" in " ".join(reasons(result).values())
    write(raw_root / "no" / "scan_no.png", encode(cv2.GaussianBlur(scan, (3, 3), 0)))
    both = reasons(prepared(raw_root, tmp_path))
    assert sum("same scan under both yes/ and no/" in r for r in both.values()) == 2


def test_every_row_of_the_catalogue_in_docs_names_a_test_that_exists():
    import re

    page = (PROJECT_ROOT / "docs" / "faults.md").read_text()
    table = page.split("## Faults and bad inputs")[1].split("\n## ")[0]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "`" in line]
    assert len(rows) >= 20
    for row in rows:
        for name in re.findall(r"`(?:(test_\w+\.py)::)?(test_\w+)`", row):
            source = (PROJECT_ROOT / "tests" / (name[0] or "test_faults.py")).read_text()
            assert f"def {name[1]}(" in source, f"{name[1]} named in docs/faults.md does not exist"


# --- records written by several processes --------------------------------------------------------


def _write_often(path: str, writer: int, times: int) -> None:
    from gan_lib.base.files import write_json

    for i in range(times):
        write_json(Path(path), {"writer": writer, "i": i, "padding": "x" * 4000})


def test_two_processes_writing_one_json_record_never_tear_it_or_fail(tmp_path):
    """Every JSON record (latest.json, manifests, config.json, metrics.json, the speed cache) is
    written one way: a temporary file of its own, flushed, renamed over the target."""
    import multiprocessing

    path = tmp_path / "latest.json"
    _write_often(str(path), 0, 1)
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_write_often, args=(str(path), w, 300)) for w in (1, 2)]
    for process in writers:
        process.start()
    reads = 0
    while any(p.is_alive() for p in writers):
        assert json.loads(path.read_text())["padding"] == "x" * 4000, "a reader saw a torn file"
        reads += 1
    assert [p.exitcode for p in writers] == [0, 0], "a writer failed"
    assert reads > 10 and sorted(p.name for p in tmp_path.iterdir()) == ["latest.json"], "no temporary file left"



def test_a_garbage_or_unwritable_speed_cache_is_measured_anew_never_a_stop(tmp_path, monkeypatch, capsys):
    """The cache only saves measuring time: a torn or foreign file, or a folder that cannot be
    written, costs one measurement and a warning naming it."""
    from gan_lib.training.engine_choice import cache_path, choose_engine

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cfg = GANConfig.from_overrides(preset="report", image_size=32, precision="float32", xla="off")  # quick to measure
    images = np.random.default_rng(0).uniform(-1, 1, (8, 32, 32, 1)).astype("float32")
    cache_path().parent.mkdir(parents=True)
    cache_path().write_bytes(b"\x00\xff{not json")
    _, record = choose_engine(cfg, images)
    assert record["how"] == "measured now" and f"the speed cache {cache_path()} is unreadable" in capsys.readouterr().out
    assert len(json.loads(cache_path().read_text())) == 1, "rewritten whole"
    cache_path().unlink()
    cache_path().parent.chmod(0o500)  # as root the folder stays writable, so also make the cache a folder
    cache_path().mkdir()
    try:
        _, record = choose_engine(cfg, images)
    finally:
        cache_path().parent.chmod(0o700)
    assert record["how"] == "measured now (not cached)" and "cannot be written" in capsys.readouterr().out


def test_a_class_map_folder_that_is_not_there_is_an_error_and_unicode_forms_match(tmp_path):
    """A misspelt folder in CLASS_MAP used to leave its images out, rc 0; so did a folder name in
    another Unicode normal form (macOS writes NFD, a map typed by hand is NFC)."""
    import unicodedata

    from test_layouts import four_class_layout

    root = tmp_path / "four"
    four_class_layout(root, n_yes=6, n_no=3)
    misspelt = "yes=glioma,meningioma,pituitry;no=notumor"
    cfg = GANConfig.from_overrides(data_source="local", data_dir=str(root), image_size=32, classes="both",
                                   class_map=misspelt)
    with pytest.raises(DataError, match=r"class_map names folder\(s\) not found .*'pituitry' \(did you mean 'pituitary'\?\)"):
        prepare_dataset(cfg, fetch_raw(cfg))
    for split in ("Training", "Testing"):  # the folder renamed to its NFD form, mapped by its NFC form
        (root / split / "notumor").rename(root / split / unicodedata.normalize("NFD", "kein_tumör"))
    nfc = GANConfig.from_overrides(data_source="local", data_dir=str(root), image_size=32, classes="both",
                                   class_map="yes=glioma,meningioma,pituitary;no=" + unicodedata.normalize("NFC", "kein_tumör"))
    result = prepare_dataset(nfc, fetch_raw(nfc))
    assert int((result.labels == 0).sum()) == 3, "every no-tumour image found"


def test_a_copied_run_folder_is_reported_and_resumed_in_the_copy_never_the_original(data_root, finished_run, tmp_path):
    """`cp -a runs/m1 runs/m1copy; make report RUN=m1copy` used to rewrite m1's metrics.json."""
    original = finished_copy(finished_run, tmp_path, "m1")
    before = {p.name: p.read_bytes() for p in original.iterdir() if p.is_file()}
    copy = Path(shutil.copytree(original, original.parent / "m1copy", symlinks=True))
    evaluate_run(GANConfig.from_overrides(run_name="m1copy", output_root=str(original.parent), n_generated=10,
                                          kid_subset_size=5, kid_subsets=2, diversity_pairs=10, classifier_seeds=1,
                                          classifier_epochs=1))
    assert (copy / "metrics.json").exists() and (copy / "coverage.csv").exists()
    train(small_cfg(data_root, tmp_path, run_name="m1copy", epochs=2))  # resumes in the copy
    assert int(load_history(copy)[-1]["step"]) == 2 * small_cfg(data_root, tmp_path).steps_per_epoch
    assert {p.name: p.read_bytes() for p in original.iterdir() if p.is_file()} == before, "the original untouched"


def test_a_finished_run_whose_checkpoints_were_deleted_is_not_silently_retrained(data_root, finished_run, tmp_path):
    """Asked for more epochs, it used to train from step 0 and replace generator.keras and config.json."""
    run_dir = finished_copy(finished_run, tmp_path, "done")
    shutil.rmtree(run_dir / "checkpoints")
    kept = {name: (run_dir / name).read_bytes() for name in ("generator.keras", "config.json", "history.csv")}
    with pytest.raises(RunFolderError, match=r"trained 6 steps but holds no checkpoint .*move the folder away"):
        train(small_cfg(data_root, tmp_path, run_name="done", epochs=2))
    assert {name: (run_dir / name).read_bytes() for name in kept} == kept



def test_a_torn_latest_json_or_manifest_is_named_with_what_to_do(tmp_path):
    cfg = GANConfig.from_overrides(data_source="phantom", data_root=str(tmp_path), image_size=32)
    path = save_processed(prepare_dataset(cfg, fetch_raw(cfg)), processed_path(cfg))
    (tmp_path / "processed" / LATEST).write_text('{"dataset": "loc')
    with pytest.raises(DataError, match=r"latest.json is damaged: not the JSON .*Name the dataset"):
        choose_dataset(cfg)
    (path.with_suffix(".manifest.json")).write_bytes(b"\x00\xff\x00")
    with pytest.raises(DataError, match=r"manifest.json is damaged: .*Run 02_preprocess again"):
        load_processed(path)


def test_a_name_too_long_for_a_file_system_is_refused_before_any_work():
    with pytest.raises(ValueError, match=r"run_name='r{40}'\.\.\.: 300 bytes; at most 200"):
        GANConfig.from_overrides(run_name="r" * 300)


def test_asking_a_one_class_generator_for_a_label_is_one_line(finished_run, tmp_path):
    run_dir = finished_copy(finished_run, tmp_path, "one")
    done = subprocess.run([sys.executable, "-m", "gan_lib", "generate", "--run", str(run_dir), "--n", "2",
                           "--out", str(tmp_path / "x"), "--label", "yes"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "--label: label=1: this generator is not class-conditional" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_edited_held_out_split_is_refused_not_scored(tmp_path):
    """Changing only the held-out part of a dataset's .npz used to move the held-out KID from 0.74
    to -0.09 and near-copies from 0 % to 100 %, rc 0: each split is checked by its own hash."""
    cfg = GANConfig.from_overrides(data_source="phantom", data_root=str(tmp_path), image_size=32)
    path = save_processed(prepare_dataset(cfg, fetch_raw(cfg)), processed_path(cfg))
    with np.load(path) as arrays:
        images, labels, split = arrays["images"].copy(), arrays["labels"], arrays["split"]
    images[split == "test"] = images[split == "train"][:int((split == "test").sum())]  # held-out = training copies
    np.savez(path, images=images, labels=labels, split=split)
    assert len(load_processed(path, "train")[0]), "the training split is as written"
    with pytest.raises(DataError, match=r"its test split is not the one 02_preprocess wrote"):
        load_processed(path, "test")
    with pytest.raises(DataError, match=r"its whole split is not the one"):
        load_processed(path, None)


@pytest.mark.parametrize("damage", ["bit-flipped", "truncated"])
def test_a_damaged_shard_is_refused_before_training_naming_it(tmp_path, damage):
    """One flipped byte in a shard used to train silently (its run could then never be evaluated);
    a cut-short one raised a bare reshape error."""
    cfg = GANConfig.from_overrides(data_source="phantom", data_root=str(tmp_path / "data"), image_size=32,
                                   memory_budget_mb=0.1, output_root=str(tmp_path / "runs"), run_name="streamed",
                                   epochs=1, steps_per_epoch=4, kid_every=0, xla="off", speed_layers="off",
                                   precision="float32", preset="report")
    save_processed(prepare_dataset(cfg, fetch_raw(cfg)), processed_path(cfg), memory_budget_mb=cfg.memory_budget_mb)
    shard = processed_path(cfg).with_suffix(".shards") / "train-00000.f32"
    data = bytearray(shard.read_bytes())
    if damage == "bit-flipped":
        data[5000] ^= 0x10
    else:
        del data[-1000:]
    shard.write_bytes(bytes(data))
    message = "do not hold the training split" if damage == "bit-flipped" else "is cut short"
    with pytest.raises(DataError, match=message):
        train(cfg)
    assert not run_path(cfg).exists(), "no run folder made"


def test_phantom_data_of_another_seed_replaces_the_folder_whole(tmp_path):
    """SEED=1 after SEED=0 under one DATA_ROOT used to leave seed 0's extra files beside seed 1's."""
    def phantom_files(data_root, seed):
        root = fetch_raw(GANConfig.from_overrides(data_source="phantom", data_root=str(data_root), seed=seed)).root
        return root, sorted((str(p.relative_to(root)), p.read_bytes()) for p in root.rglob("*")
                            if p.is_file() and p.name != "phantom.json")

    root, first = phantom_files(tmp_path / "shared", 0)
    script = ("from gan_lib.config import GANConfig; from gan_lib.data.sources import fetch_raw; "
              f"fetch_raw(GANConfig.from_overrides(data_source='phantom', data_root={str(tmp_path / 'shared')!r}, seed=1))")
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().startswith("Writing"), "the write has begun"
    time.sleep(0.5)
    child.kill()
    child.wait()
    assert phantom_files(tmp_path / "shared", 0)[1] == first, "killed mid-write: seed 0's folder as it was"
    _, second = phantom_files(tmp_path / "shared", 1)
    _, alone = phantom_files(tmp_path / "fresh", 1)
    assert second == alone and second != first, "seed 1's files exactly, none of seed 0's left"
    assert json.loads((root / "phantom.json").read_text())["spec"]["seed"] == 1
    assert [p.name for p in root.parent.iterdir()] == ["phantom"], "no temporary folder left"


def test_a_scan_stored_sideways_with_an_exif_orientation_is_used_upright_and_its_copy_caught(raw_root, tmp_path):
    """A JPEG stored turned, with EXIF orientation 6, used to train sideways, and its copy escaped
    the duplicate check (it went to the held-out split while the original trained)."""
    import io

    from PIL import Image

    scan = head_image(seed=61, centre=(130, 170))
    write(raw_root / "yes" / "upright.png", encode(scan))
    exif = Image.Exif()
    exif[274] = 6  # "turn 90 degrees clockwise to show it"
    sideways = io.BytesIO()
    Image.fromarray(np.rot90(scan, 1)).save(sideways, "JPEG", exif=exif, quality=95)
    write(raw_root / "yes" / "sideways.jpg", sideways.getvalue())
    result = prepared(raw_root, tmp_path, holdout=0.5)
    kept = [e["source_path"] for e in result.manifest.images]
    assert ("yes/upright.png" in kept) != ("yes/sideways.jpg" in kept), "one copy of the scan"
    assert "near-duplicate of yes/" in " ".join(reasons(result).values())


def test_a_valid_image_with_bytes_after_its_end_marker_is_used(raw_root, tmp_path):
    scan = head_image(seed=62, centre=(140, 180))
    write(raw_root / "yes" / "padded.jpg", encode(scan, ".jpg") + b"\x00camera trailer\xff" * 20)
    write(raw_root / "yes" / "padded.png", encode(head_image(seed=63)) + b"trailing bytes" * 20)
    kept = [e["source_path"] for e in prepared(raw_root, tmp_path).manifest.images]
    assert {"yes/padded.jpg", "yes/padded.png"} <= set(kept)


def test_a_run_resumed_without_its_data_root_finds_the_dataset_it_recorded(data_root, tmp_path, capsys):
    cfg = small_cfg(data_root, tmp_path, run_name="elsewhere")
    train(cfg, stop_after_steps=5)
    moved = GANConfig.from_overrides(**{**cfg.to_dict(), "data_root": str(tmp_path / "no-data-here")})
    train(moved)
    assert f"is not under data_root={str(tmp_path / 'no-data-here')!r}; using the file the run recorded" in capsys.readouterr().out
    assert int(load_history(run_path(cfg))[-1]["step"]) == cfg.epochs * cfg.steps_per_epoch


def test_a_kill_during_an_evaluation_leaves_the_previous_one_whole(finished_run, tmp_path):
    """A kill -9 during `make report` used to leave a new coverage.csv beside the old metrics.json:
    both are written at the evaluation's very end."""
    run_dir = finished_copy(finished_run, tmp_path, "judged")
    settings = dict(run_name="judged", output_root=str(run_dir.parent), n_generated=10, kid_subset_size=5,
                    kid_subsets=2, diversity_pairs=10, classifier_seeds=1, classifier_epochs=1)
    evaluate_run(GANConfig.from_overrides(**settings))
    before = {name: (run_dir / name).read_bytes() for name in ("metrics.json", "coverage.csv")}
    script = ("from gan_lib.config import GANConfig; from gan_lib.evaluation.evaluate import evaluate_run; "
              f"evaluate_run(GANConfig.from_overrides(**{ {**settings, 'n_generated': 12, 'classifier_epochs': 200}!r}))")
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    seen = ""
    while "[memorisation" not in seen:  # coverage is computed; the classifiers train next
        line = child.stdout.readline()
        assert line, f"ended early: {seen}"
        seen += line
    child.kill()
    child.wait()
    assert {name: (run_dir / name).read_bytes() for name in before} == before


def test_a_failed_notebook_is_kept_beside_the_good_copy_never_over_it(tmp_path):
    from gan_lib.scripts.run_notebooks import execute, notebook_path

    good = tmp_path / "04_train.ipynb"
    good.write_text("an earlier run's executed copy")
    failed = execute([notebook_path("04_train")], [{"data_root": str(tmp_path / "empty"), "run_name": "x",
                                                    "output_root": str(tmp_path / "runs")}], [good])
    assert failed == tmp_path / "04_train.failed.ipynb" and "No dataset in" in failed.read_text()
    assert good.read_text() == "an earlier run's executed copy"
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["04_train.failed.ipynb", "04_train.ipynb"]


def test_garbage_in_the_checkpoint_index_file_is_read_past_and_the_run_resumes(data_root, uninterrupted, tmp_path,
                                                                               capsys):
    cfg = small_cfg(data_root, tmp_path, run_name="garbled")
    train(cfg, stop_after_steps=5)  # ckpt-4
    (run_path(cfg) / "checkpoints" / "checkpoint").write_bytes(b"\x00\xffmodel_checkpoint_path: \x01\x02")
    resumed = train(cfg)
    assert "checkpoint is unreadable" in capsys.readouterr().out
    assert rows(resumed) == rows(uninterrupted)


def test_devices_this_machine_lacks_and_a_malformed_tf_config_are_one_line(tmp_path):
    """DEVICES=GPU:0,GPU:1 on a machine without them used to record two replicas and make no step in
    400 s; a malformed TF_CONFIG raised from deep inside TensorFlow."""
    script = """
import os
from gan_lib.config import GANConfig
from gan_lib.training.strategies import make_strategy
for settings, tf_config in (({"strategy": "mirrored", "devices": "GPU:0,GPU:1"}, None),
                            ({"strategy": "multiworker"}, "{not json"),
                            ({"strategy": "multiworker"}, '{"cluster": {"worker": ["127.0.0.1:1"]}}')):
    if tf_config:
        os.environ["TF_CONFIG"] = tf_config
    try:
        make_strategy(GANConfig.from_overrides(**settings))
    except RuntimeError as err:
        print("REFUSED", err)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    refusals = [line for line in done.stdout.splitlines() if line.startswith("REFUSED")]
    assert len(refusals) == 3, done.stdout + done.stderr
    assert "devices='GPU:0,GPU:1': this machine has no GPU:0, GPU:1; it has CPU:0" in refusals[0]
    assert "TF_CONFIG is not JSON" in refusals[1] and 'TF_CONFIG needs {"cluster"' in refusals[2]


def test_a_multiworker_peer_that_never_starts_is_named_and_the_wait_ends(tmp_path):
    """Such a worker used to wait silently for 6 minutes, deaf to Ctrl-C: now it names the silent
    peer, stops after worker_timeout_s, and Ctrl-C stops it at once."""
    import socket as sockets

    def free_port():
        with sockets.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    workers = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": 0}})}
    script = ("import sys; from gan_lib.config import GANConfig; from gan_lib.training.strategies import make_strategy; "
              "make_strategy(GANConfig.from_overrides(strategy='multiworker', worker_timeout_s=float(sys.argv[1])))")
    done = subprocess.run([sys.executable, "-c", script, "5"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and f"(not answering yet: {workers[1]})" in done.stdout
    assert "worker_timeout_s=5 s" in done.stdout and "Timeout (0:00:05)!" in done.stderr
    child = subprocess.Popen([sys.executable, "-c", script, "600"], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
    while "joining the cluster" not in child.stdout.readline():
        pass
    time.sleep(2)
    child.send_signal(signal.SIGINT)
    assert child.wait(timeout=30) == -signal.SIGINT, "Ctrl-C stops the wait"
