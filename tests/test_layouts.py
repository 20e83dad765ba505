"""Other folder layouts: class folders mapped to the two labels (`class_map`), a dataset's own test
split (`test_folder`), another pinned Kaggle handle; Kaggle's four-class set (Training/ and Testing/,
each with glioma/ meningioma/ pituitary/ notumor/) built here from phantom images, end to end."""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter

import cv2
import numpy as np
import pytest

from gan_lib.__main__ import main as gan_main
from gan_lib.config import FOUR_CLASS_MAP, KAGGLE_DATASET, GANConfig, parse_class_map
from gan_lib.data.class_folders import DataError
from gan_lib.data.images import grid_rows_caption
from gan_lib.data.phantom import PhantomSpec, write_phantom_dataset
from gan_lib.data.prepare import prepare_dataset
from gan_lib.data.sources import fetch_raw
from gan_lib.data.storage import dataset_name, load_processed, processed_path, save_processed
from gan_lib.evaluation.evaluate import evaluate_run
from gan_lib.evaluation.summary import summary_table
from gan_lib.plots import class_picks
from gan_lib.records.manifest import read_manifest_file
from gan_lib.runs.generate import classes_of, generate, load_generator
from gan_lib.runs.location import run_path
from gan_lib.training.loop import train

pytestmark = pytest.mark.slow  # trains, or starts processes or notebooks: not in `make test-fast`

TUMOUR_FOLDERS = ("glioma", "meningioma", "pituitary")


def four_class_layout(root, n_yes=30, n_no=20, test_every=5):
    """Phantom tumour images spread over the three tumour folders, normal ones in notumor/; every
    `test_every`-th image of each class under Testing/, the rest under Training/. Returns
    {relative path: expected label}."""
    phantom = root.parent / f"{root.name}-phantom"
    write_phantom_dataset(phantom, PhantomSpec(n_yes=n_yes, n_no=n_no, duplicate_fraction=0.0))
    expected = {}
    for label in ("yes", "no"):
        for i, source in enumerate(sorted((phantom / label).iterdir())):
            split = "Testing" if i % test_every == 0 else "Training"
            folder = TUMOUR_FOLDERS[i % 3] if label == "yes" else "notumor"
            target = root / split / folder / source.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)
            expected[str(target.relative_to(root))] = label
    shutil.rmtree(phantom)
    return expected


def test_a_class_map_names_the_folders_of_each_label():
    assert parse_class_map("") == {"yes": "yes", "no": "no"}
    assert parse_class_map(FOUR_CLASS_MAP) == {"glioma": "yes", "meningioma": "yes", "pituitary": "yes",
                                               "notumor": "no"}
    assert parse_class_map(" YES = Tumour ; no=Healthy;") == {"tumour": "yes", "healthy": "no"}


@pytest.mark.parametrize("bad, reason", [
    ("glioma,notumor", "label=folder"),
    ("tumour=glioma;no=notumor", "label=folder"),
    ("yes=glioma;no=glioma", "under both"),
    ("yes=glioma,meningioma", "no folder for no"),
])
def test_a_malformed_class_map_is_refused_before_any_work(bad, reason):
    with pytest.raises(ValueError, match=reason):
        GANConfig.from_overrides(class_map=bad)


def test_the_kaggle_handle_must_be_pinned_and_the_test_folder_a_name():
    with pytest.raises(ValueError, match="pinned to a version"):
        GANConfig.from_overrides(kaggle_dataset="masoudnickparvar/brain-tumor-mri-dataset")
    with pytest.raises(ValueError, match="not a path"):
        GANConfig.from_overrides(test_folder="a/Testing")


def test_the_layout_settings_name_a_dataset_of_their_own(tmp_path):
    report = GANConfig.from_overrides(data_source="local", data_dir=str(tmp_path))
    four = GANConfig.from_overrides(data_source="local", data_dir=str(tmp_path), class_map=FOUR_CLASS_MAP)
    given = GANConfig.from_overrides(data_source="local", data_dir=str(tmp_path), class_map=FOUR_CLASS_MAP,
                                     test_folder="Testing")
    assert len({dataset_name(report), dataset_name(four), dataset_name(given)}) == 3
    assert dataset_name(GANConfig()) == "kaggle_yes_128px_h0.2_s0", "the report's dataset keeps its name"


def test_the_four_class_layout_maps_its_folders_and_keeps_its_own_split(tmp_path):
    root = tmp_path / "brain-tumor-mri-dataset"
    expected = four_class_layout(root)
    # the same scan in both splits (the real set has such copies): kept once, so on one side only
    duplicate = root / "Training" / "glioma" / "copy-of-a-test-scan.png"
    first_test_scan = next(p for p, label in expected.items() if p.startswith("Testing/glioma"))
    shutil.copy(root / first_test_scan, duplicate)
    cfg = GANConfig.from_overrides(data_source="local", data_dir=str(root), data_root=str(tmp_path / "data"),
                                   image_size=32, classes="both", class_map=FOUR_CLASS_MAP, test_folder="Testing")
    result = prepare_dataset(cfg, fetch_raw(cfg))
    entries = result.manifest.images
    assert {e["source_path"]: e["label"] for e in entries} == expected
    assert all(e["split"] == ("test" if e["source_path"].startswith("Testing/") else "train") for e in entries)
    assert (result.split == "test").sum() == 10 and result.manifest.dataset.per_split == {"train": 40, "test": 10}
    assert result.manifest.dataset.split_by == "the dataset's own folder Testing/"
    assert result.manifest.dataset.class_folders["notumor"] == "no"
    skipped = {s["path"]: s["reason"] for s in result.manifest.skipped}
    assert skipped == {"Training/glioma/copy-of-a-test-scan.png": f"duplicate of {first_test_scan}"}


def test_a_test_folder_the_data_lacks_is_a_clear_error(tmp_path):
    root = tmp_path / "four"
    four_class_layout(root, n_yes=6, n_no=3)
    cfg = GANConfig.from_overrides(data_source="local", data_dir=str(root), image_size=32, class_map=FOUR_CLASS_MAP,
                                   test_folder="Validation")
    with pytest.raises(DataError, match="no usable image is below a folder of that name"):
        prepare_dataset(cfg, fetch_raw(cfg))
    report_names = GANConfig.from_overrides(data_source="local", data_dir=str(root), image_size=32)
    with pytest.raises(DataError, match=r"No class folder \(yes/, no/\).*folders are \['Testing', 'Training'\]"
                                        r".*class_map setting"):
        prepare_dataset(report_names, fetch_raw(report_names))


def test_a_flat_folder_is_told_to_make_class_folders_not_to_map_them(tmp_path):
    root = tmp_path / "flat"
    root.mkdir()
    for i in range(3):
        cv2.imwrite(str(root / f"scan{i}.png"), np.full((40, 40), 90, np.uint8))
    cfg = GANConfig.from_overrides(data_source="local", data_dir=str(root), image_size=32)
    with pytest.raises(DataError, match=r"holds files but no class folders.*put tumour scans in yes/") as caught:
        prepare_dataset(cfg, fetch_raw(cfg))
    assert "class_map" not in str(caught.value)


def test_another_pinned_kaggle_dataset_comes_from_the_kagglehub_cache(tmp_path, monkeypatch, offline):
    handle = "masoudnickparvar/brain-tumor-mri-dataset/versions/1"
    owner, slug, _, version = handle.split("/")
    cache = tmp_path / "kagglehub"
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(cache))
    version_dir = cache / "datasets" / owner / slug / "versions" / version
    four_class_layout(version_dir, n_yes=6, n_no=3)
    (cache / "datasets" / owner / slug / f"{version}.complete").write_bytes(b"")  # kagglehub's completion marker
    cfg = GANConfig.from_overrides(data_source="kaggle", kaggle_dataset=handle, data_root=str(tmp_path / "data"),
                                   image_size=32, classes="both", class_map=FOUR_CLASS_MAP)
    raw = fetch_raw(cfg)
    assert raw.root == version_dir and raw.detail == f"kagglehub {handle}" and handle != KAGGLE_DATASET
    result = prepare_dataset(cfg, raw)
    assert result.manifest.dataset.per_class == {"yes": 6, "no": 3}
    assert result.manifest.dataset.split_by == "a seeded hold-out of 0.2 per class"


def test_the_four_class_layout_prepares_trains_and_evaluates_end_to_end(tmp_path):
    """Tumour slices from the four-class layout, the dataset's own test split: 02, a few steps of
    04 and 06's evaluation, whose classifier is tested on the Testing/ images only."""
    root = tmp_path / "brain-tumor-mri-dataset"
    four_class_layout(root, n_yes=40, n_no=30)
    cfg = GANConfig.from_overrides(data_source="local", data_dir=str(root), data_root=str(tmp_path / "data"),
                                   class_map=FOUR_CLASS_MAP, test_folder="Testing", image_size=32,
                                   output_root=str(tmp_path / "runs"), run_name="four", epochs=1, steps_per_epoch=6,
                                   checkpoint_every=6, log_every=2, kid_every=0, precision="float32", xla="off",
                                   speed_layers="on", n_generated=40, kid_subset_size=10, kid_subsets=3,
                                   diversity_pairs=50, classifier_seeds=1, classifier_epochs=1,
                                   feature_extractor="random_cnn")
    save_processed(prepare_dataset(cfg, fetch_raw(cfg)), processed_path(cfg))
    train(cfg)
    record = json.loads((run_path(cfg) / "config.json").read_text())
    assert record["config"]["class_map"] == FOUR_CLASS_MAP and record["config"]["test_folder"] == "Testing"
    evaluate_run(GANConfig.from_overrides(run_name="four", output_root=cfg.output_root, n_generated=40,
                                          kid_subset_size=10, kid_subsets=3, diversity_pairs=50, classifier_seeds=1,
                                          classifier_epochs=1, feature_extractor="random_cnn"))
    metrics = json.loads((run_path(cfg) / "metrics.json").read_text())
    assert np.isfinite(metrics["fidelity"]["generated_vs_train"]["kid"])
    _, _, manifest = load_processed(processed_path(cfg), "train")
    assert all(e["source_path"].startswith("Training/") for e in manifest.images if e["split"] == "train")
    both = [p for p in (tmp_path / "data" / "processed").glob("*_both_*.json")]
    assert both, "the evaluation prepared the two-class dataset of the same layout"
    both_manifest = read_manifest_file(both[0], "")
    assert both_manifest.dataset.split_by == "the dataset's own folder Testing/"
    assert both_manifest.dataset.per_split["test"] == 14  # 8 tumour + 6 normal Testing/ images


def test_all_four_classes_train_a_generator_that_draws_each_class_and_a_four_class_classifier(tmp_path):
    """classes="all": the four folders are four labels. A conditional generator trains on them and
    draws each class on demand; 06's classifier is a four-class one, its table showing the macro AUC
    and each class's."""
    root = tmp_path / "brain-tumor-mri-dataset"
    testing = Counter(path.split("/")[1] for path in four_class_layout(root, n_yes=36, n_no=16)
                      if path.startswith("Testing/"))
    run = dict(output_root=str(tmp_path / "runs"), run_name="all4")
    small = dict(n_generated=40, kid_subset_size=10, kid_subsets=3, diversity_pairs=50, classifier_seeds=1,
                 classifier_epochs=2, feature_extractor="random_cnn")
    cfg = GANConfig.from_overrides(data_source="local", data_dir=str(root), data_root=str(tmp_path / "data"),
                                   class_map=FOUR_CLASS_MAP, test_folder="Testing", classes="all", image_size=32,
                                   epochs=1, steps_per_epoch=6, checkpoint_every=6, log_every=2, kid_every=0,
                                   precision="float32", xla="off", speed_layers="on", **run, **small)
    names = ("notumor", "glioma", "meningioma", "pituitary")
    result = prepare_dataset(cfg, fetch_raw(cfg))
    assert cfg.class_names() == names and result.manifest.dataset.class_names == list(names)
    assert result.manifest.dataset.per_class == {"notumor": 16, "glioma": 12, "meningioma": 12, "pituitary": 12}
    assert [names[label] for label in result.labels] == [e["source_path"].split("/")[1]
                                                         for e in result.manifest.images]
    save_processed(result, processed_path(cfg))
    train(cfg)
    generator = load_generator(run_path(cfg))
    assert classes_of(generator) == 4
    assert grid_rows_caption(names) == "rows: notumor, glioma, meningioma, pituitary, ..."
    with pytest.raises(ValueError, match="classes 0 to 3"):
        generate(generator, 2, seed=0, label=4)
    out = tmp_path / "meningioma"
    assert gan_main(["generate", "--run", str(run_path(cfg)), "--n", "3", "--out", str(out),
                     "--label", "Meningioma"]) == 0
    assert {row["label"] for row in csv.DictReader(open(out / "images.csv"))} == {"2"}
    evaluation = evaluate_run(GANConfig.from_overrides(**run, **small))
    u = evaluation.record.utility
    assert u["classes"] == list(names) and u["test_per_class"] == [testing[name] for name in names]
    real, both, tstr = u["conditions"].values()
    assert list(u["conditions"])[1].endswith("generated (all 4 classes)")
    assert set(both["per_class_auc_mean"]) == set(names) and 0 <= both["auc_mean"] <= 1
    assert set(evaluation.record.fidelity["per_class"]) == set(names)
    assert "macro AUC over 4 classes" in summary_table(evaluation.record)
    figure = class_picks(evaluation.generated, evaluation.generated_labels, evaluation.train, evaluation.train_labels,
                         evaluation.class_names, n=4)
    assert [t.get_text() for t in figure.axes[0].texts][::4] == [
        f"{what} '{name}'" for name in reversed(names) for what in ("generated", "real")]
