"""Coverage metrics and scan descriptors on cases whose answer is known."""

import csv

import numpy as np
import pytest

from gan_lib.data.images import to_unit_range
from gan_lib.evaluation import descriptors, metrics
from gan_lib.runs.folder import trim_history
from gan_lib.runs.logs import load_history
from gan_lib.training.monitor import HEALTH_FIELDS


def two_clusters(n_per: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.standard_normal((n_per, 8)), rng.standard_normal((n_per, 8)) + 20.0])


def test_a_sample_of_the_same_distribution_has_high_precision_recall_and_coverage():
    real, generated = two_clusters(100, seed=0), two_clusters(100, seed=1)
    scores = metrics.coverage_metrics(real, generated)
    assert scores["precision"] > 0.75 and scores["recall"] > 0.75 and scores["coverage"] > 0.9
    assert 0.6 < scores["density"] < 1.5


def test_a_generator_that_misses_a_mode_loses_recall_and_coverage_not_precision():
    real = two_clusters(100, seed=0)
    one_mode = np.random.default_rng(1).standard_normal((200, 8))  # only the first cluster
    scores = metrics.coverage_metrics(real, one_mode)
    assert scores["precision"] > 0.75
    assert 0.4 < scores["recall"] <= 0.5 and 0.4 < scores["coverage"] <= 0.5
    per_real = metrics.per_real_coverage(real, one_mode)
    assert (per_real["ratio"][100:] > 1).all(), "the missed cluster's scans are not covered"
    assert (per_real["ratio"][:100] <= 1).mean() > 0.85
    assert per_real["nearest_index"].max() < 200


def test_images_far_from_every_real_one_score_zero():
    real = two_clusters(50)
    scores = metrics.coverage_metrics(real, real + 1000.0)
    assert scores == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_matched_coverage_averages_subsets_of_the_baselines_size():
    real, generated = two_clusters(60, seed=0), two_clusters(100, seed=1)
    matched = metrics.matched_coverage(real, generated, n=20, subsets=5, seed=0)
    assert matched["n"] == 20 and matched["subsets"] == 5
    assert 0 < matched["coverage"] < metrics.coverage_metrics(real, generated)["coverage"], \
        "20 generated images reach fewer real ones than 200"
    whole = metrics.matched_coverage(real, generated, n=len(generated), subsets=3)
    assert whole["coverage_std"] == 0.0 and whole["coverage"] == metrics.coverage_metrics(real, generated)["coverage"]


def test_a_recall_exactly_at_the_warning_share_is_not_short():
    at_share, baseline = 72.8 / 101, 91 / 101  # a real run's matched recall and held-out baseline
    assert at_share < metrics.LOW_COVERAGE_RATIO * baseline  # what float rounding alone says
    assert not metrics.falls_short(at_share, baseline)
    assert metrics.falls_short(72.7 / 101, baseline)
    assert not metrics.falls_short(0.0, 0.0)


def test_a_neighbourhood_needs_more_points_than_k():
    with pytest.raises(ValueError, match="needs more than 5"):
        metrics.knn_radii(np.zeros((5, 3)), 5)


def disc_image(side=64, radius=20, centre_value=None, blob=None) -> np.ndarray:
    """A grey head disc in [-1, 1] (H, W, 1); optionally a central disc of another grey, or a
    bright blob on the left."""
    yy, xx = np.mgrid[:side, :side]
    r2 = (yy - side / 2) ** 2 + (xx - side / 2) ** 2
    image = np.where(r2 <= radius**2, 100, 0).astype(np.uint8)
    if centre_value is not None:
        image[r2 <= (radius / 4) ** 2] = centre_value
    if blob is not None:
        image[((yy - side / 2) ** 2 + (xx - side / 2 + radius / 2) ** 2) <= (radius / 3) ** 2] = blob
    texture = np.random.default_rng(0).integers(0, 6, image.shape)
    image = np.where(image > 0, image + texture, 0).astype(np.uint8)
    return to_unit_range(image)[..., None]


def test_descriptors_read_head_size_centre_contrast_and_symmetry():
    plain = descriptors.describe_scan(disc_image())
    # the head finder blurs before thresholding, so its mask reaches about a pixel past the edge
    assert plain["head_area"] == pytest.approx(np.pi * 20**2 / 64**2, rel=0.12)
    assert 0.35 < plain["p50"] < 0.45 and plain["p10"] <= plain["p50"] <= plain["p90"]
    bright_centre = descriptors.describe_scan(disc_image(centre_value=220))  # T2-like ventricles
    dark_centre = descriptors.describe_scan(disc_image(centre_value=30))  # T1-like
    assert bright_centre["centre_contrast"] > 1.5 and dark_centre["centre_contrast"] < 0.6
    assert plain["centre_contrast"] == pytest.approx(1.0, abs=0.05)
    one_sided = descriptors.describe_scan(disc_image(blob=250))
    assert plain["symmetry"] > 0.9 and bright_centre["symmetry"] > 0.9 and one_sided["symmetry"] < 0.3


def test_a_blank_image_has_no_descriptors_and_the_comparison_counts_it():
    blank = np.full((64, 64, 1), -1.0, np.float32)
    assert all(np.isnan(v) for v in descriptors.describe_scan(blank).values())
    real = descriptors.describe(np.stack([disc_image(radius=r) for r in (16, 20, 24)]))
    generated = descriptors.describe(np.stack([disc_image(radius=r) for r in (16, 20, 24)] + [blank]))
    compared = descriptors.compare(real, generated)
    assert compared["head_area"]["wasserstein_over_real_std"] == pytest.approx(0.0, abs=1e-9)
    assert compared["head_area"]["generated_without_head"] == 1


def test_a_health_log_from_before_coverage_keeps_its_rows_with_the_new_columns_blank(tmp_path):
    path = tmp_path / "health.csv"
    old_fields = [f for f in HEALTH_FIELDS if f not in ("recall", "coverage")]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, old_fields)
        writer.writeheader()
        for step in (500, 1000, 1500):
            writer.writerow({k: (step if k == "step" else 1) for k in old_fields})
    trim_history(path, 1000, HEALTH_FIELDS)
    rows = load_history(tmp_path, "health.csv")
    assert [r["step"] for r in rows] == [500, 1000]
    assert list(rows[0]) == HEALTH_FIELDS and np.isnan(rows[0]["coverage"]) and rows[0]["kid"] == 1
