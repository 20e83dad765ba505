"""The run folder's record of itself: what config.json holds (settings, the preset and what was
overridden, data identity, software, hardware), the settings an existing folder was trained with,
the check before resuming it, and trimming its CSV logs back to a restored checkpoint.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import platform
from pathlib import Path

import cv2
import keras
import numpy as np
import tensorflow as tf

from .colab import workspace_root
from .config import DEFAULT_PRESET, EVALUATION_FIELDS, PRESETS, PROJECT_ROOT, REPORT, GANConfig

# Settings a resumed run may change: they do not change what is trained.
RESUME_FREE = {"preset", "epochs", "resume", "output_root", "data_dir", "log_every", "checkpoint_every",
               *EVALUATION_FIELDS}


def library_versions() -> dict:
    return {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__, "opencv": cv2.__version__}


def run_record(cfg: GANConfig, manifest: dict, effective: dict) -> dict:
    """Everything a run resolved: settings (with its preset and what was set apart from it), what
    took effect on this machine, data identity, software and hardware."""
    data = manifest["dataset"]
    return {
        "config": cfg.to_dict(),
        "preset": cfg.preset,
        "overridden": cfg.overridden(),
        "effective": effective,
        "data": {"file": str(cfg.processed_path), "file_sha256": data.get("file_sha256"),
                 "synthetic": data["synthetic"], "source": data["source"], "source_detail": data["source_detail"],
                 "classes": data["classes"], "per_split": data["per_split"]},
        "versions": library_versions(),
        "device": {"gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
                   "platform": platform.platform(), "processor": platform.processor()},
        "paths_relative_to": str(workspace_root() or PROJECT_ROOT),  # the Colab workspace on Drive, or the repository
    }


def recorded_settings(run_dir: Path) -> dict:
    """Every setting a run folder was trained with, from its config.json. A setting newer than the
    folder is filled in as the folder was trained: off (its value in the report's preset, since
    every training option arrived switched off) or, if the report's preset lacks it, its default.
    A folder from before presets were recorded gets the name of the preset its settings match."""
    known = {f.name for f in dataclasses.fields(GANConfig)}
    saved = json.loads((run_dir / "config.json").read_text())["config"]
    settings = {**GANConfig().to_dict(), **REPORT, **{k: v for k, v in saved.items() if k in known}}
    if "preset" not in saved:
        matching = [name for name, preset in PRESETS.items() if all(settings[k] == v for k, v in preset.items())]
        settings["preset"] = matching[0] if matching else DEFAULT_PRESET
    return settings


def check_resumable(run_dir: Path, cfg: GANConfig) -> None:
    """Refuse to continue a run folder with different settings (only `epochs` may grow); a setting
    newer than the folder counts as it was then (`recorded_settings`)."""
    saved = recorded_settings(run_dir)
    changed = {k: (saved[k], v) for k, v in cfg.to_dict().items() if k not in RESUME_FREE and saved[k] != v}
    if changed:
        raise ValueError(f"{run_dir} was made with other settings {changed} (saved, now); "
                         "use another run_name, or the saved settings to resume.")


def trim_history(path: Path, last_step: int, fields: list[str]) -> None:
    """Drop rows after the restored checkpoint, so a resumed run repeats no step."""
    if not path.exists():
        return
    with path.open() as f:
        rows = [r for r in csv.DictReader(f) if int(r["step"]) <= last_step]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fields)
        writer.writeheader()
        writer.writerows(rows)
