"""Figures of an evaluation: near-copies, each class generated beside real, the least covered
scans, the scan descriptors, the classifier conditions."""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import numpy as np

from ..config import TWO_CLASSES
from ..evaluation.descriptors import DESCRIPTORS
from .images import image_grid, label_synthetic


def closest_pairs(generated, train, nearest_ssim, nearest_index, n: int = 8, synthetic: bool = False):
    """The generated images closest to a training image (top) and that image (bottom), SSIM above."""
    order = np.argsort(nearest_ssim)[::-1][:n]
    images = [generated[i] for i in order] + [train[nearest_index[i]] for i in order]
    titles = [f"SSIM {nearest_ssim[i]:.2f}" for i in order] + ["nearest training image"] * len(order)
    return image_grid(images, titles, ncols=len(order),
                      suptitle="Generated images most like a training image (top) and that image (bottom)",
                      synthetic=synthetic)


def class_picks(generated, generated_labels, real, real_labels, names: tuple[str, ...] = TWO_CLASSES, n: int = 8,
                seed: int = 0, synthetic: bool = False):
    """A class-conditional generator's images of each class above real images of that class,
    random picks: one pair of rows per class (`names`: each label's name, by number)."""
    rng = np.random.default_rng(seed)
    kind = "phantom" if synthetic else "real"
    images, titles = [], []
    for label in reversed(range(len(names))):  # tumour (1) first, as ever with two classes
        name = names[label]
        for source, labels, what in ((generated, generated_labels, "generated"), (real, real_labels, kind)):
            pool = np.flatnonzero(labels == label)
            count = min(n, len(pool))  # a short row is padded with black, so each row is one set
            images += [source[i] for i in rng.choice(pool, count, replace=False)] + [np.full_like(source[0], -1.0)] * (n - count)
            titles += [f"{what} '{name}'"] * count + [""] * (n - count)
    return image_grid(images, titles, ncols=n, tile=96, synthetic=synthetic,
                      suptitle=f"Each class: generated (upper row) and {kind} training images (lower row)")


def least_covered(real, generated, per_real: dict, n: int = 8, synthetic: bool = False):
    """The real training scans farthest from any generated image, relative to how far their own
    real neighbours are (`metrics.per_real_coverage`'s ratio; above 1: not covered), each above
    its nearest generated image: the kinds of scan the generator does not make."""
    order = np.argsort(per_real["ratio"])[::-1][:n]
    images = [real[i] for i in order] + [generated[per_real["nearest_index"][i]] for i in order]
    titles = [f"{per_real['ratio'][i]:.2f}x radius" for i in order] + ["nearest generated"] * len(order)
    kind = "phantom" if synthetic else "real"
    return image_grid(images, titles, ncols=len(order), synthetic=synthetic,
                      suptitle=f"The {kind} scans least covered (top) and the generated image nearest each (bottom)")


def descriptor_histograms(sets: dict[str, dict[str, np.ndarray]], synthetic: bool = False):
    """Each scan descriptor (`gan_lib.evaluation.descriptors`) as one histogram per image set, overlaid, the
    first set (the real one) filled: where a generated set's mass sits away from the real set's,
    those scans are missing or overmade."""
    fig, axes = plt.subplots(2, (len(DESCRIPTORS) + 1) // 2, figsize=(12, 6.4))
    for ax, (name, meaning) in zip(axes.flat, DESCRIPTORS.items()):
        finite = [v[name][np.isfinite(v[name])] for v in sets.values()]
        edges = np.histogram_bin_edges(np.concatenate(finite), bins=24)
        for i, (label, values) in enumerate(zip(sets, finite)):  # the first set (the real one) filled grey
            style = {"histtype": "stepfilled", "color": "0.8"} if i == 0 else {"histtype": "step", "linewidth": 1.6}
            ax.hist(values, bins=edges, density=True, label=f"{label} ({len(values)})", **style)
        ax.set_title(f"{name}\n{textwrap.fill(meaning, 48)}", fontsize=8)
        ax.set_yticks([])
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.tight_layout()
    fig.legend(handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 0.98))
    return label_synthetic(fig, synthetic)


def utility_chart(utility: dict, synthetic: bool = False):
    """Held-out accuracy and AUC per training condition, mean with the spread over seeds."""
    names = list(utility["conditions"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.6 + 0.5 * len(names)))
    for ax, key in zip(axes, ("accuracy", "auc")):
        means = [utility["conditions"][n][f"{key}_mean"] for n in names]
        stds = [utility["conditions"][n][f"{key}_std"] for n in names]
        ax.barh(names, means, xerr=stds, color="0.6", capsize=4)
        ax.set_xlim(0, 1)
        ax.set_xlabel(f"{key} on {utility['test_images']} held-out {'phantom' if synthetic else 'real'} images")
        ax.invert_yaxis()
    axes[1].set_yticks([])
    fig.tight_layout()
    return label_synthetic(fig, synthetic)
