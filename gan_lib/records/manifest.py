"""A dataset's manifest (`<name>.manifest.json` beside its `.npz`): where its images came from, how
they were split, each image's entry and each skipped file's reason, and the hashes that identify it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ..base.files import read_json, write_json
from .migrations import MANIFEST_VERSION, upgrade_manifest

# The hash of each split a dataset serves: "train", "test", or None for all of it.
SPLIT_HASHES = {"train": "train_sha256", "test": "test_sha256", None: "content_sha256"}


@dataclass
class DatasetSummary:
    synthetic: bool  # the phantom's slices, not real MRI
    source: str
    source_detail: str
    source_root: str
    classes: str
    image_size: int
    value_range: list
    files_found: int
    unique_usable: int
    n_images: int
    per_class: dict
    per_split: dict
    seed: int
    holdout: float | None  # None when the dataset's own test folder splits it
    split_by: str
    class_folders: dict  # class folder -> label
    subset: int
    # set once the arrays are written (storage.save_processed); None in a manifest from before each was kept
    file: str | None = None
    file_sha256: str | None = None
    content_sha256: str | None = None
    train_sha256: str | None = None
    test_sha256: str | None = None
    shards: dict | None = None  # the training split as shard files, when written (storage.write_shards)
    class_names: list = dataclasses.field(default_factory=lambda: ["no", "yes"])  # each label's name, by number
    volumes: int = 0  # 3-D scans (NIfTI files, DICOM series) its slices come from
    volume_rule: str = ""  # how those scans became slices (gan_lib.data.volumes), "" without any

    def split_hash(self, split: str | None) -> str | None:
        return getattr(self, SPLIT_HASHES[split])


@dataclass
class DatasetManifest:
    dataset: DatasetSummary
    config: dict  # the settings 02 prepared it with
    images: list  # per image: source_path, sha256, label, original_size, mode, head_box_xywh, note, split;
    # a volume's slices also: slice, case, tumour_pixels, mask
    skipped: list  # per skipped file: path, label, reason
    schema_version: int = MANIFEST_VERSION

    @classmethod
    def from_dict(cls, raw: dict) -> DatasetManifest:
        return cls(**{**raw, "dataset": DatasetSummary(**raw["dataset"])})


def read_manifest_file(path: Path, remedy: str) -> DatasetManifest:
    """The manifest at `path`, upgraded to today's shape; an unreadable one is a ValueError naming it
    and `remedy`."""
    try:
        return DatasetManifest.from_dict(upgrade_manifest(read_json(path, remedy), path))
    except (KeyError, TypeError) as err:
        raise ValueError(f"{path} is not a dataset manifest gan_lib can read ({type(err).__name__}: {err}). "
                         f"{remedy}") from None


def write_manifest_file(path: Path, manifest: DatasetManifest) -> None:
    write_json(path, dataclasses.asdict(manifest))
