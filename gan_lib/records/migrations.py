"""Every difference between a record an older gan_lib wrote and today's, in one place: each record
read is upgraded here to its current `schema_version` before it becomes a dataclass, so no other
module asks how old a folder is.

Records without a `schema_version` are version 1: everything main wrote up to 0706371, in the shapes
its commits left (tests/fixtures/records holds one of each). A setting newer than a run's record is
read as the run was trained: off (its value in the report's preset, since every training option
arrived switched off) or, if the report's preset lacks it, its default.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..config import (CONDITIONAL_ONLY, DATASET_FIELDS, DEFAULT_PRESET, PRESETS, REPORT, TWO_CLASSES, GANConfig,
                      parse_class_map)

RUN_RECORD_VERSION = 2
MANIFEST_VERSION = 3
EVALUATION_VERSION = 3
BEST_VERSION = 3
# health.csv columns an older gan_lib did not write; read as NaN (not measured)
NEWER_HEALTH_COLUMNS = ("recall", "coverage", "kid_held_out", "label_accuracy", "label_accuracy_held_out",
                        "no_tumour_called_tumour", "no_tumour_called_tumour_held_out")


class NewerRecordError(ValueError):
    """A record written by a newer gan_lib than this one: reading it could silently drop what it holds."""


def _version(raw: dict, current: int, path: Path) -> int:
    version = raw.get("schema_version", 1)
    if version > current:
        raise NewerRecordError(f"{path} has schema_version {version}, newer than this gan_lib reads ({current}): "
                               "update gan_lib (git pull, or a fresh copy of the repository) to read it.")
    return version


def upgrade_run_record(raw: dict, path: Path) -> dict:
    """config.json as today's `RunRecord` holds it."""
    if _version(raw, RUN_RECORD_VERSION, path) == 1:
        raw = _run_record_1_to_2(raw)
    return {**raw, "config": settings_as_trained(raw["config"])}


# Settings whose value before they existed was neither the report's nor today's default
BEFORE_THEY_EXISTED = {"best_by": "kid",  # generator_best.keras was the lowest KID against the training scans
                       "best_from_step": 0}  # ... at any check


def settings_as_trained(saved: dict) -> dict:
    """Every setting of today's GANConfig, as a run recorded with `saved` was trained (see the
    module's docstring); a setting GANConfig no longer has is dropped."""
    known = {f.name for f in dataclasses.fields(GANConfig)}
    return {**GANConfig().to_dict(), **REPORT, **BEFORE_THEY_EXISTED, **{k: v for k, v in saved.items() if k in known}}


def _run_record_1_to_2(raw: dict) -> dict:
    config = dict(raw["config"])
    if isinstance(config["xla"], bool):  # before xla took auto | on | off
        config["xla"] = "on" if config["xla"] else "off"
    if "preset" not in config:  # before presets were recorded: the preset its settings match (the
        # conditional-only settings came later, and change nothing of a run of one class)
        settings = settings_as_trained(config)
        matching = [name for name, preset in PRESETS.items()
                    if all(settings[k] == v for k, v in preset.items() if k not in CONDITIONAL_ONLY)]
        config["preset"] = matching[0] if matching else DEFAULT_PRESET
    data = dict(raw["data"])
    if not config.get("dataset"):  # before datasets were named: the name is the file's stem
        config["dataset"] = Path(data["file"]).stem
    data.setdefault("dataset", config["dataset"])
    # before the training split's hash was kept, the dataset file's hash identified the data
    data["identified_by"] = "train_sha256" if data.get("train_sha256") else "file_sha256"
    data.setdefault("train_sha256", None)
    effective = {"engines": [], **raw["effective"]}  # before engines were listed per step: none known
    return {**raw, "config": config, "data": data, "effective": effective, "preset": config["preset"],
            "overridden": raw.get("overridden", {}), "schema_version": 2}


def upgrade_manifest(raw: dict, path: Path) -> dict:
    """A dataset's manifest as today's `DatasetManifest` holds it."""
    version = _version(raw, MANIFEST_VERSION, path)
    if version == 1:
        raw = _manifest_1_to_2(raw)
    if version <= 2:  # before 3-D scans and classes="all": no volume, their settings' defaults, two classes
        config = {**{name: getattr(GANConfig(), name) for name in DATASET_FIELDS}, **raw["config"]}
        dataset = {"volumes": 0, "volume_rule": "", "class_names": list(TWO_CLASSES), **raw["dataset"]}
        raw = {**raw, "config": config, "dataset": dataset, "schema_version": 3}
    return raw


def _manifest_1_to_2(raw: dict) -> dict:
    defaults = GANConfig()
    # before the layout settings existed, the dataset had their defaults (the report's layout)
    config = {**{name: getattr(defaults, name) for name in DATASET_FIELDS}, **raw["config"]}
    # before each split's hash was kept: unknown, so that split is not checked
    hashes = dict.fromkeys(("file_sha256", "content_sha256", "train_sha256", "test_sha256"))
    # ... and every split was a seeded hold-out per class of the yes/ and no/ folders
    layout = {"class_folders": parse_class_map(""), "split_by": f"a seeded hold-out of {config['holdout']:g} per class"}
    dataset = {**hashes, **layout, "shards": None, **raw["dataset"]}
    return {**raw, "config": config, "dataset": dataset, "schema_version": 2}


def upgrade_evaluation(raw: dict, path: Path) -> dict:
    """metrics.json as today's `EvaluationRecord` holds it; one evaluated before coverage and the
    scan descriptors existed has them as None (add_coverage computes them), one evaluated before
    the generator's step was recorded has generator_step None."""
    version = _version(raw, EVALUATION_VERSION, path)
    if version == 1:
        raw = {"coverage": None, "descriptors": None, **raw, "schema_version": 2}
    if version <= 2:  # before which_generator: generator.keras was measured, at a step not recorded
        raw = {**raw, "config": {**raw["config"], "which_generator": "final"}, "generator_step": None, "schema_version": 3}
    return raw


def upgrade_best(raw: dict, path: Path) -> dict:
    """best.json as today's `BestGenerator` holds it: before version 3 it was picked by KID against
    the training scans, and KID against the held-out scans was not measured."""
    if _version(raw, BEST_VERSION, path) <= 2:
        raw = {**raw, "by": "kid", "kid_held_out": None, "schema_version": 3}
    return raw


def upgrade_health_rows(rows: list[dict]) -> list[dict]:
    """health.csv's rows with every column today's gan_lib writes (NaN where an older one wrote none)."""
    return [{**row, **{k: float("nan") for k in NEWER_HEALTH_COLUMNS if k not in row}} for row in rows]
