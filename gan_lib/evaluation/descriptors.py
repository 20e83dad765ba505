"""Per-scan descriptors people read directly, to see which kinds of real scan a generator makes and
which it never makes: how much of the picture the head fills, the brightness of the tissue, a
contrast proxy and a symmetry figure. KID says that two sets differ; these say how.

Images are (N, H, W, 1) in [-1, 1], as everywhere in gan_lib.
"""

from __future__ import annotations

import numpy as np

from ..data.images import as_uint8
from ..data.scans import head_mask

# name -> what it measures, for tables and figure titles
DESCRIPTORS = {
    "head_area": "share of the picture inside the head",
    "p10": "10th percentile of the head's intensity",
    "p50": "median intensity of the head",
    "p90": "90th percentile of the head's intensity",
    "centre_contrast": "centre of the head over its median (T2-like, bright ventricles: > 1)",
    "symmetry": "left-right mirror correlation of the head (large one-sided lesions: low)",
}
CENTRE_SHARE = 0.3  # the central ellipse spans this share of the head's height and width


def describe_scan(image: np.ndarray) -> dict:
    """The descriptors of one image (H, W) or (H, W, 1) in [-1, 1]; NaN where no head is found.

    centre_contrast: in an axial or coronal slice the lateral ventricles sit at the head's centre;
    their cerebrospinal fluid is dark on T1-weighted and FLAIR scans and bright on T2-weighted ones,
    so the centre's mean over the head's median separates the contrasts (on the real training set its
    lowest values are FLAIR- and T1-like slices with dark ventricles, its highest T2-like ones).
    symmetry: axial and coronal slices are near mirror images about the head's vertical midline
    unless a lesion fills one side (the real set's lowest values are large one-sided tumours).
    """
    gray = as_uint8(image).reshape(image.shape[0], image.shape[1])
    try:
        mask = head_mask(gray)
    except ValueError:
        return {name: float("nan") for name in DESCRIPTORS}
    values = gray[mask].astype(np.float64) / 255.0
    p10, p50, p90 = np.percentile(values, [10, 50, 90])
    rows, cols = np.nonzero(mask)
    cy, cx = rows.mean(), cols.mean()
    ry = CENTRE_SHARE * (rows.max() - rows.min() + 1) / 2
    rx = CENTRE_SHARE * (cols.max() - cols.min() + 1) / 2
    yy, xx = np.mgrid[:gray.shape[0], :gray.shape[1]]
    centre = mask & (((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1)
    centre_mean = gray[centre].mean() / 255.0 if centre.any() else p50
    return {"head_area": float(mask.mean()), "p10": float(p10), "p50": float(p50), "p90": float(p90),
            "centre_contrast": float(centre_mean / max(p50, 1e-3)), "symmetry": _mirror_correlation(gray, mask, cx)}


def _mirror_correlation(gray: np.ndarray, mask: np.ndarray, cx: float) -> float:
    """Correlation of the head's pixels with their mirror images about the column through its centre."""
    shift = int(round(2 * cx - (gray.shape[1] - 1)))  # mirror about cx = flip, then move by this
    mirrored, mirrored_mask = np.fliplr(gray), np.fliplr(mask)
    mirrored, mirrored_mask = np.roll(mirrored, shift, axis=1), np.roll(mirrored_mask, shift, axis=1)
    both = mask & mirrored_mask
    if both.sum() < 2:
        return float("nan")
    a, b = gray[both].astype(np.float64), mirrored[both].astype(np.float64)
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def describe(images: np.ndarray) -> dict[str, np.ndarray]:
    """Each descriptor for every image, as arrays by name."""
    rows = [describe_scan(image) for image in images]
    return {name: np.array([r[name] for r in rows]) for name in DESCRIPTORS}


def compare(real: dict[str, np.ndarray], generated: dict[str, np.ndarray]) -> dict:
    """Per descriptor: mean, spread and 5th/95th percentiles of the real and generated sets, and the
    1-D Wasserstein distance between them over the real set's spread (0: the same distribution)."""
    out = {}
    for name in DESCRIPTORS:
        r, g = real[name][np.isfinite(real[name])], generated[name][np.isfinite(generated[name])]
        if len(r) == 0 or len(g) == 0:
            out[name] = {"note": "no head found in one of the sets"}
            continue
        quantiles = np.linspace(0, 1, 101)
        wasserstein = float(np.mean(np.abs(np.quantile(r, quantiles) - np.quantile(g, quantiles))))
        out[name] = {"real_mean": float(r.mean()), "real_std": float(r.std()),
                     "generated_mean": float(g.mean()), "generated_std": float(g.std()),
                     "real_p5_p95": [float(v) for v in np.percentile(r, [5, 95])],
                     "generated_p5_p95": [float(v) for v in np.percentile(g, [5, 95])],
                     "wasserstein_over_real_std": wasserstein / max(float(r.std()), 1e-9),
                     "generated_without_head": int(len(generated[name]) - len(g))}
    return out
