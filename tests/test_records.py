"""The records a run and a dataset keep, as each older gan_lib wrote them (tests/fixtures/records,
written by its capture.py from this repository's history), read as today's typed records: every
setting there, in today's values, each dataset by its name, and the data identified as it was then."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from gan_lib.config import (CONDITIONAL_ONLY, DATASET_FIELDS, KAGGLE_DATASET, PRESETS, SWITCHES, VOLUME_FIELDS,
                            GANConfig, parse_class_map)
from gan_lib.data.storage import with_dataset
from gan_lib.records.evaluation import read_best, read_evaluation, write_best, write_evaluation
from gan_lib.records.manifest import SPLIT_HASHES, read_manifest_file, write_manifest_file
from gan_lib.records.migrations import (BEST_VERSION, EVALUATION_VERSION, MANIFEST_VERSION, RUN_RECORD_VERSION,
                                        NewerRecordError)
from gan_lib.records.run import RunFolderError, read_run_record, write_run_record
from gan_lib.runs.logs import load_history

FIXTURES = Path(__file__).parent / "fixtures" / "records"
COMMITS = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())
BEFORE_NAMED_DATASETS = "7e43019"
BEFORE_COVERAGE = {"7e43019", "73101d2", "d852cd9"}
VERSIONED = {"c0aaa49"}  # records with a schema_version, metrics.json's before which_generator


def run_folder(commit: str, tmp_path: Path) -> Path:
    folder = tmp_path / commit
    shutil.copytree(FIXTURES / commit, folder)
    return folder


def test_there_is_a_fixture_of_each_older_shape_and_of_main_before_and_after_versions():
    assert COMMITS == sorted(["7e43019", "73101d2", "d852cd9", "66008c5", "0706371", "c0aaa49"])


@pytest.mark.parametrize("commit", COMMITS)
def test_an_older_run_record_reads_with_every_setting_as_it_was_trained(commit, tmp_path):
    raw = json.loads((FIXTURES / commit / "config.json").read_text())
    record = read_run_record(run_folder(commit, tmp_path))
    assert record.schema_version == RUN_RECORD_VERSION and ("schema_version" in raw) == (commit in VERSIONED)
    assert set(record.config) == {f.name for f in dataclasses.fields(GANConfig)}
    GANConfig.from_overrides(**record.config)  # valid settings, as a resumed run takes them
    assert record.config["xla"] in SWITCHES and record.config["xla"] == "off", "trained without XLA"
    # 7e43019 recorded no preset: its settings (that commit's defaults) are the default preset's, but for
    # the conditional-only settings, which came later (and are read as off)
    assert record.preset == record.config["preset"] == raw.get("preset", "report-ada-mbstd-r1")
    preset = {k: v for k, v in PRESETS[record.preset].items() if k not in CONDITIONAL_ONLY}
    assert {k: record.config[k] for k in preset} == preset
    assert record.data.dataset == record.config["dataset"] == Path(raw["data"]["file"]).stem
    assert record.data.identified_by == ("file_sha256" if commit == BEFORE_NAMED_DATASETS else "train_sha256")
    assert getattr(record.data, record.data.identified_by) == raw["data"][record.data.identified_by]
    assert isinstance(record.effective["engines"], list)
    assert record.effective["total_steps"] == 6


@pytest.mark.parametrize("commit", COMMITS)
def test_an_older_manifest_reads_with_its_layout_and_the_hashes_it_kept(commit):
    raw = json.loads((FIXTURES / commit / "manifest.json").read_text())
    manifest = read_manifest_file(FIXTURES / commit / "manifest.json", "")
    assert manifest.schema_version == MANIFEST_VERSION
    assert set(DATASET_FIELDS) <= set(manifest.config)
    assert manifest.dataset.class_folders == parse_class_map(""), "the report's yes/ and no/ folders"
    assert manifest.dataset.split_by == "a seeded hold-out of 0.2 per class"
    # before 3-D scans and classes="all": no volume, two classes, the volume settings' defaults
    assert (manifest.dataset.class_names, manifest.dataset.volumes, manifest.dataset.volume_rule) == \
        (["no", "yes"], 0, "")
    assert {k: manifest.config[k] for k in VOLUME_FIELDS} == {k: getattr(GANConfig(), k) for k in VOLUME_FIELDS}
    assert manifest.config["phantom_layout"] == "images"
    for split in ("train", "test", None):  # a hash it did not keep is None (not checked), never invented
        kept = raw["dataset"].get(SPLIT_HASHES[split])
        assert manifest.dataset.split_hash(split) == kept
    cfg = with_dataset(GANConfig.from_overrides(), Path(f"{commit}.npz"), manifest)
    assert (cfg.kaggle_dataset, cfg.class_map, cfg.test_folder) == (KAGGLE_DATASET, "", ""), "the report's layout"
    assert (cfg.image_size, cfg.data_source) == (32, "phantom")


def test_a_data_setting_given_against_an_older_manifest_is_still_refused():
    manifest = read_manifest_file(FIXTURES / "73101d2" / "manifest.json", "")  # before the layout settings
    with pytest.raises(ValueError, match="class_map"):
        with_dataset(GANConfig.from_overrides(class_map="yes=glioma,no=notumor"), Path("x.npz"), manifest)


@pytest.mark.parametrize("commit", COMMITS)
def test_an_older_evaluation_and_best_generator_read_and_coverage_is_missing_only_where_it_was(commit, tmp_path):
    folder = run_folder(commit, tmp_path)
    evaluation, best = read_evaluation(folder), read_best(folder)
    assert evaluation.schema_version == EVALUATION_VERSION and best.schema_version == BEST_VERSION
    assert (evaluation.coverage is None) == (commit in BEFORE_COVERAGE)
    assert (evaluation.descriptors is None) == (commit in BEFORE_COVERAGE)
    assert evaluation.n_generated == 40 and evaluation.fidelity["generated_vs_train"]["kid"] >= 0
    assert evaluation.config["which_generator"] == "final" and evaluation.generator_step is None, "not recorded then"
    health = load_history(folder, "health.csv")
    # picked by KID against the training scans, then (versioned) against the held-out ones
    assert best.by == ("kid_held_out" if commit in VERSIONED else "kid")
    assert best.step == 6 and getattr(best, best.by) == min(r[best.by] for r in health)
    assert all(np.isnan(r["coverage"]) for r in health) == (commit in BEFORE_COVERAGE)


@pytest.mark.parametrize("commit", COMMITS)
def test_each_record_written_back_reads_the_same_and_carries_its_version(commit, tmp_path):
    folder = run_folder(commit, tmp_path)
    record, evaluation, best = read_run_record(folder), read_evaluation(folder), read_best(folder)
    manifest = read_manifest_file(folder / "manifest.json", "")
    write_run_record(folder, record)
    write_evaluation(folder, evaluation)
    write_best(folder, best)
    write_manifest_file(folder / "manifest.json", manifest)
    assert (read_run_record(folder), read_evaluation(folder), read_best(folder)) == (record, evaluation, best)
    assert read_manifest_file(folder / "manifest.json", "") == manifest
    versions = {"config.json": RUN_RECORD_VERSION, "metrics.json": EVALUATION_VERSION, "best.json": BEST_VERSION,
                "manifest.json": MANIFEST_VERSION}
    for name, version in versions.items():
        assert json.loads((folder / name).read_text())["schema_version"] == version, name


def test_a_record_from_a_newer_gan_lib_is_refused_naming_the_file(tmp_path):
    folder = run_folder("0706371", tmp_path)
    for name, read in (("config.json", read_run_record), ("metrics.json", read_evaluation), ("best.json", read_best)):
        raw = json.loads((folder / name).read_text())
        (folder / name).write_text(json.dumps({**raw, "schema_version": 99}))
        with pytest.raises(NewerRecordError, match=f"{name} has schema_version 99, newer than this gan_lib reads"):
            read(folder)


def test_a_missing_or_damaged_run_record_says_which_file_and_what_to_do(tmp_path):
    with pytest.raises(RunFolderError, match="config.json is missing or unreadable.*Restore it"):
        read_run_record(tmp_path)
    (tmp_path / "config.json").write_text('{"config": {')
    with pytest.raises(RunFolderError, match="config.json is missing or unreadable.*damaged.*Restore it"):
        read_run_record(tmp_path)
