"""The metrics on cases whose answer is known."""

import numpy as np
import pytest

from gan_lib.data.images import to_unit_range
from gan_lib.data.phantom import render_slice
from gan_lib.data.scans import crop_pad_resize, head_box
from gan_lib.evaluation import metrics
from gan_lib.evaluation.classifier import roc_auc


@pytest.fixture(scope="module")
def slices() -> np.ndarray:
    """40 phantom slices at 64 px, in [-1, 1], as the training set would hold them."""
    rng = np.random.default_rng(0)
    out = []
    for i in range(40):
        gray = render_slice(rng, 200, 220, tumour=bool(i % 2))
        out.append(crop_pad_resize(gray, head_box(gray), 64))
    return to_unit_range(np.stack(out))[..., None]


def features_of(n: int, shift: float = 0.0, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 16)) + shift


def test_kid_is_near_zero_for_one_distribution_and_grows_with_the_difference():
    same, _ = metrics.kid(features_of(200, seed=1), features_of(200, seed=2), subset_size=100, subsets=20)
    shifted, std = metrics.kid(features_of(200, seed=1), features_of(200, 1.0, seed=2), subset_size=100, subsets=20)
    identical, _ = metrics.kid(features_of(200, seed=1), features_of(200, seed=1), subset_size=100, subsets=20)
    assert abs(same) < 0.02 and identical == pytest.approx(0.0, abs=1e-9)
    assert shifted > 0.2 and shifted > 10 * std


def test_fid_is_zero_for_identical_sets_and_the_squared_mean_shift_for_shifted_copies():
    a = features_of(300)
    assert metrics.fid(a, a) == pytest.approx(0.0, abs=1e-6)
    assert metrics.fid(a, a + 0.5) == pytest.approx(16 * 0.25, rel=1e-6)  # 16 dims, covariances equal


def test_noise_images_are_far_from_real_images_on_the_offline_features(slices):
    from gan_lib.evaluation.features import random_cnn_extractor

    extractor = random_cnn_extractor(64)
    real = extractor.extract(slices)
    noise = extractor.extract(np.random.default_rng(3).uniform(-1, 1, slices.shape).astype(np.float32))
    mean, std = real.mean(0), real.std(0) + 1e-6
    real, noise = (real - mean) / std, (noise - mean) / std
    halves, _ = metrics.kid(real[:20], real[20:], subset_size=20, subsets=20)
    fake, _ = metrics.kid(noise, real, subset_size=20, subsets=20)
    assert fake > 100 * max(abs(halves), 1e-2)


def test_msssim_scales_fit_the_image_side():
    assert metrics.msssim_scales(128) == 5 and metrics.msssim_scales(64) == 4 and metrics.msssim_scales(32) == 3


def test_identical_sets_have_equal_diversity_and_copies_of_one_image_are_collapsed(slices):
    same = metrics.diversity(slices, slices, pairs=200)
    assert same["diversity_ratio"] == pytest.approx(1.0) and not same["less_diverse"]
    copies = metrics.diversity(np.repeat(slices[:1], 30, axis=0), slices, pairs=200)
    assert copies["generated_msssim"] == pytest.approx(1.0, abs=1e-4)
    assert copies["collapsed"] and copies["less_diverse"]


def test_copies_of_training_images_are_flagged_as_memorised_and_fresh_images_are_not(slices):
    train, held_out = slices[:30], slices[30:]
    copies = train[np.random.default_rng(0).integers(0, 30, 25)]
    memorised, _, _ = metrics.memorisation(copies, train, held_out, near_copy_ssim=0.8)
    assert memorised["generated_near_copy_share"] == 1.0 and memorised["memorised"]
    fresh, _, _ = metrics.memorisation(held_out, train, held_out, near_copy_ssim=0.8)
    assert not fresh["memorised"]
    best, index = metrics.nearest_by_ssim(train[:5], train, exclude_same_index=True)
    assert (index != np.arange(5)).all() and (best < 1.0).all()


def test_nearest_ssim_has_tensorflows_values(slices):
    import tensorflow as tf

    best, index = metrics.nearest_by_ssim(slices[:6], slices[6:20])
    pairs = tf.image.ssim((tf.constant(slices[:6]) + 1) / 2, (tf.constant(slices[6:20][index]) + 1) / 2, 1.0)
    np.testing.assert_allclose(best, pairs.numpy(), atol=1e-4)
    one_pair = tf.image.ssim((tf.constant(slices[:1]) + 1) / 2, (tf.constant(slices[6:20]) + 1) / 2, 1.0).numpy()
    assert best[0] == pytest.approx(one_pair.max(), abs=1e-4) and index[0] == one_pair.argmax()


def test_roc_auc_from_ranks():
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
    assert roc_auc(np.array([0, 1, 0, 1]), np.array([0.5, 0.5, 0.5, 0.5])) == 0.5
    assert np.isnan(roc_auc(np.array([1, 1]), np.array([0.2, 0.3])))


def test_nearest_ssim_over_more_references_than_one_opencv_call_takes(slices):
    """OpenCV 5 blurs at most 128 channels at once; 150 references need two groups."""
    references = np.concatenate([slices] * (150 // len(slices) + 1))[:150]
    best, index = metrics.nearest_by_ssim(references[140:145], references, exclude_same_index=False)
    np.testing.assert_allclose(best, 1.0, atol=1e-5)
    np.testing.assert_array_equal(references[index], references[140:145])


def test_a_nearly_constant_feature_no_longer_dominates_kid():
    """Split 0's no-tumour class had one of 480 features at 0.4 % of the median spread; standardised
    on its 64 training scans, held-out scans sat ~95 spreads out and their KID was 32.9."""
    rng = np.random.default_rng(0)
    train, held = rng.standard_normal((64, 40)), rng.standard_normal((16, 40))
    train[:, 0] = 5.0 + 1e-4 * rng.standard_normal(64)
    held[:, 0] = 5.0 + 0.02 * rng.standard_normal(16)  # differs by a hair, but by ~200 of train's spreads
    raw_mean, raw_spread = train.mean(0), train.std(0) + 1e-6
    mean, spread = metrics.standardiser(train)
    np.testing.assert_array_equal(spread[1:], raw_spread[1:]), "features with an ordinary spread: unchanged"
    assert spread[0] == pytest.approx(metrics.SPREAD_FLOOR * np.median(train.std(0)) + 1e-6)
    before = metrics.kid((held - raw_mean) / raw_spread, (train - raw_mean) / raw_spread, subset_size=16, subsets=20)[0]
    after = metrics.kid((held - mean) / spread, (train - mean) / spread, subset_size=16, subsets=20)[0]
    assert before > 10 and abs(after) < 0.5
