"""Image-set metrics: fidelity (KID, FID on features), coverage (precision/recall, density/coverage
on features), diversity (MS-SSIM), memorisation (SSIM to the nearest training image). Pure functions
of arrays; which features and images go in is `gan_lib.evaluation.evaluate`'s job. Images are (N, H, W, 1) in
[-1, 1], as everywhere in gan_lib.
"""

from __future__ import annotations

import cv2
import numpy as np
import tensorflow as tf

# Flags. Diversity is 1 - mean pairwise MS-SSIM; its ratio to the real set's is the figure.
LESS_DIVERSE_RATIO = 0.85  # below: "markedly less diverse than the real images" (a warning)
COLLAPSED_RATIO = 0.5  # below: mode collapse
LOW_COVERAGE_RATIO = 0.8  # generated recall or coverage below this share of the held-out real baseline's: a warning
NEAR_COPY_MARGIN = 0.05  # memorised: near-copy share above the real baseline's by more than this
MSSSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang et al.'s five-scale weights
MSSSIM_FILTER = 7  # Gaussian window side: with the default 11, five scales need sides over 160 px


# ---------------------------------------------------------------------------------------------
# Fidelity


# A feature's spread, when features are standardised on a set of real scans, is taken as at least
# this share of the median feature's: a feature nearly constant over a small set (one of 480 random-CNN
# features over 64 no-tumour scans had 0.4 % of the median spread) otherwise puts scans that differ on
# it by a hair dozens of spreads away, and one such feature dominates KID.
SPREAD_FLOOR = 0.1


def standardiser(reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, spread) per feature of `reference`, for (features - mean) / spread; each spread
    floored at SPREAD_FLOOR times the median spread."""
    spread = reference.std(0)
    return reference.mean(0), np.maximum(spread, SPREAD_FLOOR * np.median(spread)) + 1e-6


def _polynomial_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a @ b.T / a.shape[1] + 1.0) ** 3


def kid(features_a: np.ndarray, features_b: np.ndarray, subset_size: int = 100, subsets: int = 50,
        seed: int = 0) -> tuple[float, float]:
    """Kernel Inception Distance: the unbiased MMD^2 U-statistic (cubic polynomial kernel) averaged
    over random subsets; returns (mean, standard deviation over subsets). Unbiased, so fit for a few
    hundred images: near 0 (possibly slightly negative) for two samples of one distribution.

    Both sets are indexed by one draw when they are the same size (harmless for independent sets)
    and the cross term skips i == j, as in Gretton et al.'s (2012) MMD_u^2: a set against itself
    scores exactly 0 rather than the negative value that independent draws of shared rows give.
    """
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    m = min(subset_size, len(a), len(b))
    if m < 2:
        raise ValueError(f"KID needs at least 2 images per set; got {len(a)} and {len(b)}")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(subsets):
        index_a = rng.choice(len(a), m, replace=False)
        index_b = index_a if len(a) == len(b) else rng.choice(len(b), m, replace=False)
        x, y = a[index_a], b[index_b]
        kxx, kyy, kxy = _polynomial_kernel(x, x), _polynomial_kernel(y, y), _polynomial_kernel(x, y)
        off_diagonal = lambda k: (k.sum() - np.trace(k)) / (m * (m - 1))  # noqa: E731
        values.append(off_diagonal(kxx) + off_diagonal(kyy) - 2.0 * off_diagonal(kxy))
    return float(np.mean(values)), float(np.std(values))


def fid(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets. Biased upward for small sets
    (hundreds of images against 2048 features): compare FIDs of equal set sizes only."""
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # trace sqrt(A B) = sum sqrt(eig(sqrt(A) B sqrt(A))), all symmetric: numpy only, no scipy.
    vals, vecs = np.linalg.eigh(cov_a)
    root_a = (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ cov_b @ root_a), 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2.0 * cross)


# ---------------------------------------------------------------------------------------------
# Coverage: which real images have generated ones near them, and the other way round

PRECISION_RECALL_K = 3  # Kynkaanniemi et al. (2019)'s neighbourhood size
DENSITY_COVERAGE_K = 5  # Naeem et al. (2020)'s


def pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances between the rows of a and b."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    d2 = (a**2).sum(1)[:, None] - 2 * a @ b.T + (b**2).sum(1)[None]
    return np.sqrt(np.clip(d2, 0, None))


def knn_radii(features: np.ndarray, k: int) -> np.ndarray:
    """Each point's distance to its k-th nearest other point of the same set: the radius of the
    ball that the set's manifold estimate puts around it."""
    if len(features) <= k:
        raise ValueError(f"a k={k} neighbourhood needs more than {k} images; got {len(features)}")
    d = pairwise_distances(features, features)
    np.fill_diagonal(d, np.inf)
    return np.sort(d, axis=1)[:, k - 1]


def falls_short(value: float, baseline: float, share: float = LOW_COVERAGE_RATIO) -> bool:
    """Whether `value` is below `share` of `baseline`. Recall and coverage are counts of the same
    training images, so a value exactly at the share happens (72.8/101 against 91/101 at 0.8), and
    float rounding of share x baseline must not call it short."""
    return value < share * baseline * (1.0 - 1e-9)


def coverage_metrics(real: np.ndarray, generated: np.ndarray, pr_k: int = PRECISION_RECALL_K,
                     dc_k: int = DENSITY_COVERAGE_K) -> dict:
    """Precision and recall (Kynkaanniemi et al. 2019: the share of generated images inside the
    real set's k-NN balls, and of real images inside the generated set's) and density and coverage
    (Naeem et al. 2020: how many real balls hold each generated image on average, over k; the share
    of real balls holding at least one). Recall and coverage fall when real modes are never made."""
    d = pairwise_distances(real, generated)  # real x generated
    real_pr, gen_pr, real_dc = knn_radii(real, pr_k), knn_radii(generated, pr_k), knn_radii(real, dc_k)
    inside_dc = d <= real_dc[:, None]
    return {"precision": float((d <= real_pr[:, None]).any(0).mean()),
            "recall": float((d <= gen_pr[None, :]).any(1).mean()),
            "density": float(inside_dc.sum() / (dc_k * len(generated))),
            "coverage": float(inside_dc.any(1).mean())}


def matched_coverage(real: np.ndarray, generated: np.ndarray, n: int, subsets: int = 20, seed: int = 0) -> dict:
    """coverage_metrics of random n-image subsets of `generated` (mean and spread over subsets): set
    size moves recall and coverage, so a baseline of n real images is matched by n generated ones."""
    rng = np.random.default_rng(seed)
    runs = [coverage_metrics(real, generated[rng.choice(len(generated), n, replace=False)]) for _ in range(subsets)]
    return {**{name: float(np.mean([r[name] for r in runs])) for name in runs[0]},
            **{f"{name}_std": float(np.std([r[name] for r in runs])) for name in runs[0]}, "n": n, "subsets": subsets}


def per_real_coverage(real: np.ndarray, generated: np.ndarray, k: int = DENSITY_COVERAGE_K) -> dict:
    """For each real image: the distance to its nearest generated image, that image's index, and that
    distance over the real image's own k-NN radius (at most 1: covered, in Naeem et al.'s sense).
    The largest ratios are the real scans the generator least reaches."""
    distance, nearest = nearest_feature_distance(real, generated)
    radius = knn_radii(real, k)
    return {"distance": distance, "nearest_index": nearest, "radius": radius, "ratio": distance / np.maximum(radius, 1e-12)}


# ---------------------------------------------------------------------------------------------
# Diversity


def msssim_scales(side: int) -> int:
    """How many scales fit: the smallest must still hold one MSSSIM_FILTER window."""
    scales = 1
    while scales < len(MSSSIM_WEIGHTS) and side // 2**scales >= MSSSIM_FILTER:
        scales += 1
    return scales


def msssim(images_a: np.ndarray, images_b: np.ndarray, batch: int = 256) -> np.ndarray:
    """MS-SSIM of each pair (images_a[i], images_b[i]), with as many scales as the side allows."""
    scales = msssim_scales(images_a.shape[1])
    weights = np.array(MSSSIM_WEIGHTS[:scales]) / sum(MSSSIM_WEIGHTS[:scales])
    out = []
    for start in range(0, len(images_a), batch):
        a = (tf.constant(images_a[start:start + batch], tf.float32) + 1.0) / 2.0
        b = (tf.constant(images_b[start:start + batch], tf.float32) + 1.0) / 2.0
        out.append(tf.image.ssim_multiscale(a, b, 1.0, power_factors=weights.tolist(),
                                            filter_size=MSSSIM_FILTER).numpy())
    return np.concatenate(out)


def random_pairs(n: int, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` random pairs of distinct indices below n (all pairs if there are fewer)."""
    i, j = np.triu_indices(n, 1)
    if len(i) > count:
        pick = np.random.default_rng(seed).choice(len(i), count, replace=False)
        i, j = i[pick], j[pick]
    return i, j


def mean_pairwise_msssim(images: np.ndarray, pairs: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Mean MS-SSIM over random pairs of distinct images, and its standard error."""
    i, j = random_pairs(len(images), pairs, seed)
    values = msssim(images[i], images[j])
    return float(values.mean()), float(values.std() / np.sqrt(len(values)))


def diversity_ratio(generated_msssim: float, real_msssim: float) -> float:
    """Generated diversity (1 - mean pairwise MS-SSIM) over the real set's: 1 = as diverse as real."""
    return (1.0 - generated_msssim) / max(1.0 - real_msssim, 1e-9)


def diversity(generated: np.ndarray, real: np.ndarray, pairs: int = 1000, seed: int = 0) -> dict:
    """Generated images' diversity against the real set's, with the collapse flags."""
    gen_ms, gen_se = mean_pairwise_msssim(generated, pairs, seed)
    real_ms, real_se = mean_pairwise_msssim(real, pairs, seed)
    ratio = diversity_ratio(gen_ms, real_ms)
    return {"generated_msssim": gen_ms, "generated_msssim_se": gen_se, "real_msssim": real_ms,
            "real_msssim_se": real_se, "diversity_ratio": ratio, "msssim_scales": msssim_scales(real.shape[1]),
            "less_diverse": ratio < LESS_DIVERSE_RATIO, "collapsed": ratio < COLLAPSED_RATIO}


# ---------------------------------------------------------------------------------------------
# Memorisation


SSIM_WINDOW, SSIM_SIGMA = 11, 1.5  # tf.image.ssim's Gaussian window, so the values are the same
SSIM_C1, SSIM_C2 = 0.01**2, 0.03**2  # for images in [0, 1]


def _blur(stack: np.ndarray) -> np.ndarray:
    """Gaussian-weighted local means of (H, W[, C]) float32 maps, over windows that fit inside the
    image (tf.image.ssim's VALID region): OpenCV's separable blur, then the border cropped."""
    half = SSIM_WINDOW // 2
    out = cv2.GaussianBlur(stack, (SSIM_WINDOW, SSIM_WINDOW), SSIM_SIGMA, borderType=cv2.BORDER_CONSTANT)
    return out[half:-half, half:-half]


def nearest_by_ssim(queries: np.ndarray, references: np.ndarray, exclude_same_index: bool = False,
                    channels: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """For each query, the highest SSIM (tf.image.ssim's definition) to any reference image, and
    that image's index; `exclude_same_index` skips query i against reference i (a set against
    itself). The references' local means and variances are computed once; each query then costs
    one blur of its products with the references (OpenCV 5 blurs at most 128 channels per call)."""
    to_unit = lambda x: np.ascontiguousarray(((np.asarray(x, np.float32)[..., 0] + 1.0) / 2.0))  # noqa: E731
    refs = to_unit(references)
    groups = []
    for start in range(0, len(refs), channels):
        stack = np.ascontiguousarray(np.moveaxis(refs[start:start + channels], 0, -1))
        mu = _blur(stack)
        groups.append((stack, mu, _blur(stack * stack) - mu * mu))
    best, best_index = np.full(len(queries), -np.inf), np.zeros(len(queries), int)
    for i, q in enumerate(to_unit(queries)):
        mu_q = _blur(q)[..., None]
        var_q = _blur(q * q)[..., None] - mu_q * mu_q
        scores = []
        for stack, mu_r, var_r in groups:
            cov = _blur(q[..., None] * stack) - mu_q * mu_r
            ssim_map = ((2 * mu_q * mu_r + SSIM_C1) * (2 * cov + SSIM_C2)
                        / ((mu_q**2 + mu_r**2 + SSIM_C1) * (var_q + var_r + SSIM_C2)))
            scores.append(ssim_map.reshape(-1, ssim_map.shape[-1]).mean(0))
        scores = np.concatenate(scores)
        if exclude_same_index and i < len(scores):
            scores[i] = -np.inf
        best[i], best_index[i] = scores.max(), scores.argmax()
    return best, best_index


def memorisation(generated: np.ndarray, train: np.ndarray, held_out: np.ndarray,
                 near_copy_ssim: float) -> tuple[dict, np.ndarray, np.ndarray]:
    """How close generated images come to training images, against the real baseline: how close
    held-out real images (never trained on) come to them. A GAN trained on ~141 images can simply
    copy them; real scans also have near-duplicates, so the baseline is not zero. Returns the
    summary, and per generated image its nearest training image's SSIM and index."""
    gen_best, gen_index = nearest_by_ssim(generated, train)
    base_best, _ = nearest_by_ssim(held_out, train) if len(held_out) else (np.array([]), None)
    gen_share = float((gen_best >= near_copy_ssim).mean())
    base_share = float((base_best >= near_copy_ssim).mean()) if len(base_best) else 0.0
    summary = {"near_copy_ssim": near_copy_ssim,
               "generated_near_copy_share": gen_share, "baseline_near_copy_share": base_share,
               "baseline": "held-out real images against the training images",
               "generated_nearest_ssim_median": float(np.median(gen_best)),
               "baseline_nearest_ssim_median": float(np.median(base_best)) if len(base_best) else None,
               "memorised": gen_share > base_share + NEAR_COPY_MARGIN}
    return summary, gen_best, gen_index


def nearest_feature_distance(queries: np.ndarray, references: np.ndarray,
                             exclude_same_index: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distance from each query feature vector to its nearest reference, and its index;
    `exclude_same_index` as in `nearest_by_ssim`."""
    d = pairwise_distances(queries, references)
    if exclude_same_index:
        np.fill_diagonal(d, np.inf)
    return d.min(1), d.argmin(1)
