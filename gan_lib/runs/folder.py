"""The run folder's record of itself: what config.json holds (settings, the preset and what was
overridden, data identity, software, hardware), the settings an existing folder was trained with,
the check before resuming it, and trimming its CSV logs back to a restored checkpoint.
"""

from __future__ import annotations

import csv
import hashlib
import os
import platform
import shutil
import tempfile
from pathlib import Path

import cv2
import keras
import numpy as np
import tensorflow as tf

from ..base.colab import workspace_root
from ..base.files import replacing
from ..base.paths import PROJECT_ROOT
from ..base.progress import print_above_bar
from ..config import CONDITIONAL_ONLY, DISTRIBUTE_FIELDS, ENGINE_FIELDS, EVALUATION_FIELDS, GANConfig
from ..data.storage import dataset_file
from ..models.layers import with_stock_layers
from ..records.evaluation import FINAL_RECORD, write_final_step
from ..records.manifest import DatasetManifest
from ..records.run import RunData, RunFolderError, RunRecord, read_run_record

KEEP_CHECKPOINTS = 3  # the newest ones; a damaged newest leaves two to walk back to
# Settings a resumed run may change: they do not change what is trained (the data is checked by
# its hash, `check_same_data`, wherever it is found).
# The folder a command is given is the run, wherever it was made: a copied or renamed folder
# resumes and is evaluated in place (its recorded run_name and output_root are history).
RESUME_FREE = {"preset", "dataset", "epochs", "resume", "run_name", "output_root", "data_dir", "data_root",
               "log_every", "checkpoint_every",
               # how the step is computed, not what: chosen again on each machine; effective.engines
               # in config.json says which engine computed which steps
               *ENGINE_FIELDS,
               # where it runs: a run may resume on another replica count with the same global batch
               *DISTRIBUTE_FIELDS,
               *EVALUATION_FIELDS,
               # which check's generator is kept as generator_best.keras: picked afresh from the
               # resumed step when it changes (the run says so), and from which step; when to stop
               # before the schedule's end
               "best_by", "best_from_step", "stop_after_checks"}


def source_digest(package: Path = Path(__file__).parents[1]) -> str:
    """A hash of gan_lib's own source files: the same settings train differently when the code
    changes (e.g. D's output unit moved to float32), and a Colab copy on Drive has no git history."""
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def library_versions() -> dict:
    return {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__, "opencv": cv2.__version__, "gan_lib_source_sha256": source_digest()}


def run_record(cfg: GANConfig, manifest: DatasetManifest, effective: dict, train_sha256: str) -> RunRecord:
    """Everything a run resolved: settings (with its preset and what was set apart from it), what
    took effect on this machine, data identity, software and hardware."""
    data = manifest.dataset
    return RunRecord(
        config=cfg.to_dict(), preset=cfg.preset, overridden=cfg.overridden(), effective=effective,
        data=RunData(dataset=cfg.dataset, file=str(dataset_file(cfg, cfg.dataset)), train_sha256=train_sha256,
                     file_sha256=data.file_sha256, synthetic=data.synthetic, source=data.source,
                     source_detail=data.source_detail, classes=data.classes, per_split=data.per_split),
        versions=library_versions(),
        device={"gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
                "platform": platform.platform(), "processor": platform.processor()},
        paths_relative_to=str(workspace_root() or PROJECT_ROOT))


def has_checkpoint(run_dir: Path) -> bool:
    return any((run_dir / "checkpoints").glob("ckpt-*.index"))


def recorded_dataset(run_dir: Path, cfg: GANConfig | None = None) -> Path:
    """The dataset file the run trained on: by its recorded name under `cfg`'s data root (by default
    the run's recorded settings'), else the file it recorded (checked by its hash either way)."""
    record = read_run_record(run_dir)
    cfg, data = cfg or GANConfig.from_overrides(**record.config), record.data
    path, recorded = dataset_file(cfg, data.dataset), Path(data.file)
    if not path.exists() and recorded.exists():  # resumed or evaluated without the data_root it trained with
        print_above_bar(f"dataset {data.dataset} is not under data_root={cfg.data_root!r}; using the file the run "
                        f"recorded, {recorded} (checked by its hash)")
        return recorded
    return path


def check_same_data(run_dir: Path, path: Path, train_sha256: str, manifest: DatasetManifest) -> None:
    """Refuse to resume or evaluate a run on data other than it trained on, naming what changed."""
    data = read_run_record(run_dir).data
    now = {"train_sha256": train_sha256, "file_sha256": manifest.dataset.file_sha256}[data.identified_by]
    was = getattr(data, data.identified_by)
    if was != now:
        then = f"{data.source} {data.per_split} from {data.source_detail}"
        today = f"{manifest.dataset.source} {manifest.dataset.per_split} from {manifest.dataset.source_detail}"
        raise RunFolderError(f"{run_dir.name} trained on {data.file} ({then}; hash {str(was)[:12]}); {path} now "
                             f"holds other data ({today}; hash {str(now)[:12]}). Restore that dataset, or train "
                             "under another run_name.")


def recorded_settings(run_dir: Path) -> dict:
    """Every setting a run folder was trained with, from its config.json (a setting newer than the
    folder as it was trained: `records.migrations`)."""
    return read_run_record(run_dir).config


def engines_by_step(run_dir: Path, restored: str | None, step: int, engine: dict) -> list[dict]:
    """Which engine computed which steps: the run folder's list, extended when a resumed run computes
    its steps another way (another machine, or other settings); a change of precision is said aloud."""
    earlier = read_run_record(run_dir).effective["engines"] if restored else []
    if earlier and earlier[-1]["engine"] == engine:
        return earlier
    if earlier and earlier[-1]["engine"]["precision"] != engine["precision"]:
        print(f"NOTE: steps up to {step} were computed in {earlier[-1]['engine']['precision']}, the rest in "
              f"{engine['precision']} (config.json, effective.engines).")
    return earlier + [{"from_step": step, "engine": engine}]


def check_resumable(run_dir: Path, cfg: GANConfig, conditional: bool) -> None:
    """Refuse to continue a run folder with different settings (only `epochs` may grow); a setting
    newer than the folder counts as it was then (`recorded_settings`), and a conditional model's
    setting does not count unless the run's models are `conditional` (it changes nothing else)."""
    saved = recorded_settings(run_dir)
    free = RESUME_FREE if conditional else RESUME_FREE | set(CONDITIONAL_ONLY)
    changed = {k: (saved[k], v) for k, v in cfg.to_dict().items() if k not in free and saved[k] != v}
    if changed:
        raise ValueError(f"{run_dir} was made with other settings {changed} (saved, now); "
                         "use another run_name, or the saved settings to resume.")


def trim_history(path: Path, last_step: int, fields: list[str]) -> None:
    """Drop rows after the restored checkpoint, so a resumed run repeats no step, and a row a kill
    cut short (said aloud); the file is rewritten whole, with `fields` as its columns (a column a
    run folder from an older gan_lib lacks is left empty in its rows)."""
    if not path.exists():
        return
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        rows, present = list(reader), [k for k in fields if k in (reader.fieldnames or [])]
    whole = [r for r in rows if all(r.get(k) not in (None, "") for k in present) and r["step"].isdigit()]
    if len(whole) < len(rows):
        print_above_bar(f"dropped {len(rows) - len(whole)} incomplete row(s) of {path.name}, cut short by a kill")
    with replacing(path, newline="") as f:
        writer = csv.DictWriter(f, fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(r for r in whole if int(r["step"]) <= last_step)


def save_model(model: keras.Model, path: Path) -> None:
    """Save a float32, stock-layer copy (loadable anywhere without gan_lib, whatever precision
    trained it), whole or not at all (a kill mid-save leaves the previous file)."""
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp.keras")  # one per writer
    os.close(handle)
    try:
        with_stock_layers(model, dtype="float32").save(tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def save_final_generator(model: keras.Model, run_dir: Path, step: int) -> None:
    """generator.keras and generator.json (its step); the old step's record goes first, so a stop
    between the two leaves none naming the wrong step."""
    (run_dir / FINAL_RECORD).unlink(missing_ok=True)
    save_model(model, run_dir / "generator.keras")
    write_final_step(run_dir, step)


def restore_newest_good(checkpoint: tf.train.Checkpoint, ckpt_dir: Path, tidy: bool = True) -> str | None:
    """Restore the newest checkpoint that restores, walking back past corrupt ones (each named, with
    why, and with `tidy` deleted), and with `tidy` remove temp folders that interrupted saves left;
    the checkpoint index then lists the good ones only. None if there is none; RunFolderError if
    none restores. A process that does not own the folder (a non-chief worker) reads, not tidies."""
    for temp in ckpt_dir.glob("*_temp") if tidy else ():
        shutil.rmtree(temp, ignore_errors=True)
        print_above_bar(f"removed {temp.name}/, left by an interrupted checkpoint save")
    try:
        state = tf.train.get_checkpoint_state(str(ckpt_dir))
    except Exception as err:  # noqa: BLE001 - a garbled `checkpoint` file: its protobuf parse error
        print_above_bar(f"WARNING: {ckpt_dir / 'checkpoint'} is unreadable ({type(err).__name__}); finding the checkpoints "
                        "by their files instead")
        if tidy:  # written anew below from the checkpoints that restore
            (ckpt_dir / "checkpoint").unlink()
        state, skipped_index = None, True
    else:
        skipped_index = False
    listed = {Path(p).name for p in state.all_model_checkpoint_paths} if state else set()
    found = {p.stem for p in ckpt_dir.glob("ckpt-*.index")}  # also those the index lost
    candidates = sorted((str(ckpt_dir / name) for name in listed | found), key=_checkpoint_number)
    good, skipped = [], []
    for path in reversed(candidates):
        try:
            checkpoint.restore(path).assert_existing_objects_matched()
        except Exception as err:  # noqa: BLE001 - TensorFlow raises several kinds for a damaged file
            reason = f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
            skipped.append(path)
            print_above_bar(f"WARNING: skipped {Path(path).name}: it does not restore ({reason}); trying the one before")
            continue
        good = [p for p in candidates if p not in skipped and _checkpoint_number(p) <= _checkpoint_number(path)]
        break
    if candidates and not good:
        raise RunFolderError(f"No checkpoint in {ckpt_dir} restores (all {len(candidates)} damaged); move the run "
                             "folder away to start over.")
    for path in skipped if tidy else ():
        for part in ckpt_dir.glob(f"{Path(path).name}.*"):
            part.unlink()
    if (skipped or skipped_index) and good and tidy:
        tf.compat.v1.train.update_checkpoint_state(str(ckpt_dir), good[-1], all_model_checkpoint_paths=good)
    return good[-1] if good else None


def _checkpoint_number(path: str) -> int:
    return int(Path(path).name.rsplit("-", 1)[1])
