"""Where the raw images come from: Kaggle (via kagglehub), Google Drive, a local folder, or the
built-in synthetic phantom. Each route ends in one folder that holds the class folders (`yes/` and
`no/`, or those `class_map` names) somewhere below it; reading and cleaning the images is
`gan_lib.data.prepare`'s job, not this module's.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from ..base.paths import resolve
from ..config import GANConfig
from .phantom import PHANTOM_NOTICE, PhantomSpec, write_phantom_dataset
from .volumes.phantom import PhantomVolumeSpec, write_phantom_volumes

DRIVE_MOUNT = Path("/content/drive")


class DataSourceError(RuntimeError):
    """The raw data cannot be had; the message says what to do instead."""


@dataclass(frozen=True)
class RawSource:
    root: Path  # a folder with the class folders somewhere below it
    source: str  # the route actually taken (drive off Colab is recorded as local)
    synthetic: bool
    detail: str  # handle, mount or notice, for the manifest and the run config

    def to_dict(self) -> dict:
        return {**asdict(self), "root": str(self.root)}


def fetch_raw(cfg: GANConfig) -> RawSource:
    """Get the raw images for `cfg.data_source` and say where they are (no decoding here)."""
    if cfg.data_source in ("local", "drive") and not cfg.data_dir:
        raise DataSourceError(f"data_source={cfg.data_source!r} needs data_dir (a folder with yes/ and no/, or the "
                              "class folders class_map names).")
    if cfg.data_source == "phantom":
        return _phantom(cfg)
    if cfg.data_source == "kaggle":
        return _kaggle(cfg.kaggle_dataset)
    if cfg.data_source == "drive":
        return _drive(cfg)
    return _local(resolve(cfg.data_dir), "local", f"folder {cfg.data_dir}")


def _phantom(cfg: GANConfig) -> RawSource:
    """Write the synthetic set under data/raw/phantom (phantom-nifti, phantom-dicom for volumes), unless
    the same spec is already there. It is written whole into a folder of its own, then put in place
    of the old one, so the folder never mixes two seeds' files and its phantom.json always describes
    what is in it."""
    volumes = cfg.phantom_layout != "images"
    spec = PhantomVolumeSpec(seed=cfg.seed) if volumes else PhantomSpec(seed=cfg.seed)
    name = f"phantom-{cfg.phantom_layout}" if volumes else "phantom"
    out = resolve(cfg.data_root) / "raw" / name
    try:
        same = json.loads((out / "phantom.json").read_text()).get("spec") == json.loads(json.dumps(asdict(spec)))
    except (OSError, ValueError):  # none yet, or one a kill cut short
        same = False
    if not same:
        what = f"{spec.n_tumour + spec.n_clear} {cfg.phantom_layout} volumes" if volumes else \
            f"{spec.n_yes + spec.n_no} images"
        print(f"Writing {what} of {PHANTOM_NOTICE} to {out} ...")
        out.parent.mkdir(parents=True, exist_ok=True)
        for left in out.parent.glob(f".{name}.*"):  # what a killed write left
            shutil.rmtree(left, ignore_errors=True)
        fresh = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=out.parent))
        if volumes:
            write_phantom_volumes(fresh, cfg.phantom_layout, spec)
        else:
            write_phantom_dataset(fresh, spec)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{name}.old-", dir=out.parent))
            os.replace(out, old / name)
        os.replace(fresh, out)
        for left in out.parent.glob(f".{name}.*"):
            shutil.rmtree(left, ignore_errors=True)
    return RawSource(out, "phantom", True, PHANTOM_NOTICE)


def _kaggle(handle: str) -> RawSource:
    """Download the pinned Kaggle version, or read it from the kagglehub cache when offline."""
    import kagglehub
    import requests
    from kagglehub import exceptions as kh

    cache = os.environ.get("KAGGLEHUB_CACHE", "~/.cache/kagglehub")
    try:
        path = kagglehub.dataset_download(handle)
    except (requests.exceptions.RequestException, OSError, kh.BackendError, kh.NotFoundError,
            kh.DataCorruptionError, kh.UnauthenticatedError, kh.CredentialError) as err:
        raise DataSourceError(
            f"Could not download Kaggle dataset {handle} and it is not in the kagglehub "
            f"cache ({cache}): {type(err).__name__}: {str(err)[:200]}\n"
            "If Kaggle refused access (401/403), sign in: on Colab, add the secrets KAGGLE_USERNAME and "
            "KAGGLE_KEY (kaggle.com > Settings > API) and let this notebook use them, or run "
            "`import kagglehub; kagglehub.login()`; elsewhere, set those two environment variables.\n"
            "Without Kaggle: data_source='drive' with data_dir a MyDrive folder holding yes/ and no/ (Colab), "
            "data_source='local' with data_dir pointing at such a folder, data_source='phantom' (built-in "
            "synthetic data, no network), or KAGGLEHUB_CACHE set to a cache that already holds this dataset version."
        ) from None
    return RawSource(Path(path), "kaggle", False, f"kagglehub {handle}")


def _drive(cfg: GANConfig) -> RawSource:
    """On Colab, mount Google Drive and read data_dir under MyDrive; elsewhere it is a local path."""
    if "google.colab" not in sys.modules:
        print(f"WARNING: data_source='drive' outside Colab: reading data_dir={cfg.data_dir!r} as a local folder.")
        return _local(resolve(cfg.data_dir), "local", f"drive requested off Colab; folder {cfg.data_dir}")
    from google.colab import drive  # available only on Colab

    drive.mount(str(DRIVE_MOUNT))
    root = Path(cfg.data_dir)
    if not root.is_absolute():
        root = DRIVE_MOUNT / "MyDrive" / root
    return _local(root, "drive", f"Google Drive {root}")


def _local(root: Path, source: str, detail: str) -> RawSource:
    root = root.resolve()
    if not root.is_dir():
        raise DataSourceError(f"data_dir {root} does not exist or is not a folder (it should hold yes/ and no/).")
    return RawSource(root, source, False, detail)
