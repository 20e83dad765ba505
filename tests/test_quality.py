"""The quality benchmark's verdict: the issue's bars applied to the best new preset."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from gan_lib.config import PRESETS, GANConfig
from gan_lib.scripts.quality import bars, table, utility_aucs


def row(kid, diversity, near_copies, warnings=0):
    return {"steps": 6000, "wall_time_min": 60.0, "kid": kid, "kid_std": 0.1, "best_training_kid": kid,
            "best_training_kid_step": 6000, "diversity_ratio": diversity, "near_copy_share": near_copies,
            "real_near_copy_share": 0.15, "collapse_warnings": warnings, "auc_real": 0.8, "auc_real_plus_generated": None,
            "auc_generated_only": None,
            "recall_matched": 0.5, "recall_held_out": 0.9, "coverage_matched": 0.6, "coverage_held_out": 0.55}


def test_bars_judge_the_lowest_kid_new_preset_against_report():
    rows = {"report": row(2.0, 0.6, 0.0), "a": row(0.9, 0.9, 0.1), "b": row(1.5, 1.0, 0.0, warnings=1)}
    verdict = bars(rows)
    assert verdict == {"best_preset": "a", "kid_at_most_half_of_report": True,
                       "diversity_within_15_percent_of_real": True, "near_copies_not_above_real": True,
                       "no_collapse_warning": True}
    rows["a"] = row(1.1, 0.8, 0.2)
    verdict = bars(rows)
    assert not any(verdict[k] for k in ("kid_at_most_half_of_report", "diversity_within_15_percent_of_real",
                                        "near_copies_not_above_real"))
    text = table(rows, verdict)
    assert text.count("\n| ") == 3 and "n/a" in text and "best_preset: a" in text
    assert "| 0.50 (0.90) | 0.60 (0.55) |" in text, "recall and coverage next to the held-out real baseline's"
    assert text.count("| 0.800 / n/a / n/a |") == 3, "one-class runs have no train-on-synthetic AUC"


def test_utility_aucs_read_the_evaluations_conditions():
    utility = {"conditions": {"real": {"auc_mean": 0.8}, "real + 113 generated 'yes'": {"auc_mean": 0.82}}}
    assert utility_aucs(utility) == {"auc_real": 0.8, "auc_real_plus_generated": 0.82, "auc_generated_only": None}
    both = {"conditions": {"real": {"auc_mean": 0.8}, "real + 165 generated (both classes)": {"auc_mean": 0.78},
                           "generated only (165): train on synthetic, test on real": {"auc_mean": 0.7}}}
    assert utility_aucs(both) == {"auc_real": 0.8, "auc_real_plus_generated": 0.78, "auc_generated_only": 0.7}
    assert utility_aucs({"skipped": "no test images"}) == {"auc_real": None, "auc_real_plus_generated": None,
                                                           "auc_generated_only": None}


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_builds_models_that_draw_and_judge_a_batch_of_either_class(preset):
    """`make quality` trains every preset: each one's settings are valid and build a G whose images
    D scores, for a run of one class and a class-conditional one (the labels drawn apart)."""
    from gan_lib.models.architectures import build_models, is_conditional

    for classes in ("yes", "both"):
        cfg = GANConfig.from_overrides(preset=preset, image_size=32, classes=classes)
        assert {k: getattr(cfg, k) for k in PRESETS[preset]} == PRESETS[preset]
        generator, discriminator = build_models(cfg)
        noise = keras.ops.convert_to_tensor(np.random.default_rng(0).standard_normal((2, cfg.noise_dim)), "float32")
        labels = keras.ops.convert_to_tensor(np.array([0, 1], "int32"))
        fakes = generator([noise, labels] if is_conditional(cfg) else noise)
        scores = discriminator([fakes, labels] if is_conditional(cfg) else fakes)
        assert (tuple(fakes.shape), tuple(scores.shape)) == ((2, 32, 32, 1), (2, 1))
        assert np.isfinite(np.asarray(scores)).all()


def test_a_setting_given_over_the_preset_is_typed_and_reaches_the_config():
    import argparse

    from gan_lib.scripts.quality import preset_config, setting

    assert setting("reuse_fakes=False") == ("reuse_fakes", False)
    assert setting("r1_every=4") == ("r1_every", 4) and setting("augment=translation") == ("augment", "translation")
    args = argparse.Namespace(data_dir="", image_size=64, seed=1, steps=1000, out="q", feature_extractor="random_cnn",
                              precision="auto", xla="auto", speed_layers="auto", set=[setting("reuse_fakes=False")])
    cfg = preset_config("report-ada-mbstd-r1-lean", args)
    assert cfg.reuse_fakes is False and cfg.r1_every == PRESETS["report-ada-mbstd-r1-lean"]["r1_every"]
    assert cfg.overridden()["reuse_fakes"] is False
    both = preset_config("report-ada-mbstd-r1", argparse.Namespace(**{**vars(args), "set": [setting("classes=both")]}))
    assert both.classes == "both" and "_both_" in both.dataset, "--set may change the data too"
