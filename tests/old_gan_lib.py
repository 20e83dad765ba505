"""gan_lib as it was at a commit of this repository's history, run in a process of its own: how the
tests make a run folder (and its dataset) exactly as an older gan_lib wrote it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from gan_lib.base.paths import PROJECT_ROOT

OLD_API = """from gan_lib.training import train; from gan_lib.evaluate import evaluate_run
from gan_lib.data import prepare_dataset; from gan_lib.sources import fetch_raw
try:
    from gan_lib.datasets import save_processed
except ImportError:  # before datasets had a module of their own
    from gan_lib.data import save_processed
processed = lambda cfg: cfg.processed_path"""
PACKAGED_API = ("from gan_lib.training.loop import train; from gan_lib.evaluation.evaluate import evaluate_run; "
                "from gan_lib.data.prepare import prepare_dataset; from gan_lib.data.storage import save_processed, "
                "processed_path as processed; from gan_lib.data.sources import fetch_raw")
SCRIPT = """
import dataclasses, json, sys
from gan_lib.config import GANConfig
{api}
known = {{f.name for f in dataclasses.fields(GANConfig)}}
settings = {{k: v for k, v in json.loads(sys.argv[1]).items() if k in known}}
if isinstance(GANConfig().xla, bool):  # before xla took auto | on | off
    settings["xla"] = settings["xla"] == "on"
cfg = GANConfig.from_overrides(**settings)
save_processed(prepare_dataset(cfg, fetch_raw(cfg)), processed(cfg))
train(cfg)
if {evaluate}:
    evaluate_run(cfg)
"""


def run_old_gan_lib(commit: str, settings: dict, folder: Path, evaluate: bool = False) -> None:
    """Prepare the dataset `settings` name, train the run and (with `evaluate`) evaluate it, with
    gan_lib taken from `commit` into `folder`; settings that commit did not have are left out."""
    archive = subprocess.run(["git", "-C", str(PROJECT_ROOT), "archive", commit, "gan_lib"], capture_output=True,
                             check=True).stdout
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    api = PACKAGED_API if (folder / "gan_lib" / "training" / "loop.py").exists() else OLD_API
    script = SCRIPT.format(api=api, evaluate=evaluate)
    done = subprocess.run([sys.executable, "-c", script, json.dumps(settings)], cwd=folder, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(folder)})
    if done.returncode:
        raise RuntimeError(f"gan_lib at {commit} failed:\n{done.stderr[-3000:]}")
