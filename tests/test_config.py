"""GANConfig: one checked object from notebook parameters to code."""

from __future__ import annotations

import json

import pytest

from gan_lib.base.files import write_json
from gan_lib.base.paths import PROJECT_ROOT, resolve
from gan_lib.config import DEFAULT_PRESET, FOUR_CLASS_MAP, PRESETS, GANConfig, class_names
from gan_lib.data.storage import dataset_file, processed_path


def test_unknown_key_raises_and_lists_the_known_ones():
    with pytest.raises(ValueError, match="Unknown config key.*epoch.*known keys"):
        GANConfig.from_overrides(epoch=3)


@pytest.mark.parametrize("key, value", [("image_size", "128"), ("image_size", 128.0), ("holdout", "0.2"),
                                        ("seed", True), ("classes", 1)])
def test_wrong_type_raises(key, value):
    with pytest.raises(TypeError, match=key):
        GANConfig.from_overrides(**{key: value})


@pytest.mark.parametrize("overrides, message", [
    (dict(data_source="s3"), "data_source"), (dict(classes="maybe"), "classes"),
    (dict(image_size=100), "multiple of 16"), (dict(holdout=1.0), "holdout"),
    (dict(n_images=-1), "n_images"), (dict(epochs=0), "epochs"), (dict(run_name="a/b"), "run_name"),
    (dict(best_by="loss"), "best_by"), (dict(which_generator="last"), "which_generator"),
    (dict(stop_after_checks=2, kid_every=0), "stop_after_checks"),
    (dict(stop_after_checks=2, strategy="multiworker"), "only the chief"),
])
def test_values_the_pipeline_cannot_honour_raise(overrides, message):
    with pytest.raises(ValueError, match=message):
        GANConfig.from_overrides(**overrides)


def test_an_int_is_accepted_for_a_float():
    assert GANConfig.from_overrides(holdout=0).holdout == 0.0


def test_paths_are_relative_to_the_project_and_name_the_data():
    cfg = GANConfig.from_overrides(data_source="phantom", classes="both", image_size=64, n_images=10)
    assert processed_path(cfg) == PROJECT_ROOT / "data" / "processed" / "phantom_both_64px_n10_h0.2_s0.npz"
    assert dataset_file(GANConfig.from_overrides(data_root="/abs/x"), "d").as_posix() == "/abs/x/processed/d.npz"
    assert resolve("/abs/x").as_posix() == "/abs/x" and resolve("data") == PROJECT_ROOT / "data"


def test_to_dict_round_trips(tmp_path):
    cfg = GANConfig.from_overrides(data_source="phantom", seed=5)
    write_json(tmp_path / "c.json", cfg.to_dict())
    assert GANConfig.from_overrides(**json.loads((tmp_path / "c.json").read_text())) == cfg


def test_a_preset_is_applied_first_then_the_settings_given():
    cfg = GANConfig.from_overrides(preset="report", learning_rate=1e-4)
    assert {k: getattr(cfg, k) for k in PRESETS["report"]} == {**PRESETS["report"], "learning_rate": 1e-4}
    assert cfg.preset == "report" and cfg.overridden() == {"learning_rate": 1e-4}
    assert GANConfig.from_overrides(preset="report", arch=None).arch == PRESETS["report"]["arch"], "None: the preset's"
    assert GANConfig.from_overrides() == GANConfig() and GANConfig().preset == DEFAULT_PRESET


def test_an_unknown_preset_names_the_known_ones():
    with pytest.raises(ValueError, match="preset='best'.*report-ada"):
        GANConfig.from_overrides(preset="best")


def test_classes_all_names_each_class_folder_a_label_the_no_tumour_ones_first():
    assert class_names("all", FOUR_CLASS_MAP) == ("notumor", "glioma", "meningioma", "pituitary")
    assert class_names("all", "") == class_names("both", FOUR_CLASS_MAP) == class_names("yes", "") == ("no", "yes")
    two = GANConfig.from_overrides(classes="all", class_map="yes=Tumour;no=Healthy")
    assert two.class_names() == ("healthy", "tumour")
