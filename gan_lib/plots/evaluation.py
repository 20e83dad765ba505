"""Figures of an evaluation: near-copies, each class generated beside real, the least covered
scans, the scan descriptors, the classifier conditions."""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import numpy as np

from ..config import TWO_CLASSES
from ..data.images import as_uint8, montage
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


def stage_curves(rows: dict[str, dict], synthetic: bool = False):
    """The evaluation of runs kept at several stages (scripts.stages' rows, each naming its `run`)
    against steps: each class's KID, recall and coverage beside the held-out real scans', the
    classifier AUCs over real-only, and the label fidelity. One colour per run."""
    runs = sorted({r["run"] for r in rows.values()}, key=list(r["run"] for r in rows.values()).index)
    fig, axes = plt.subplots(1, 4, figsize=(20, 3.6))
    kind = "phantom" if synthetic else "real"
    for colour, run in zip(plt.rcParams["axes.prop_cycle"].by_key()["color"] * 3, runs):
        mine = [r for r in rows.values() if r["run"] == run]
        steps = [r["steps"] for r in mine]
        series = lambda key: [np.nan if r.get(key) is None else r[key] for r in mine]  # noqa: E731
        ratio = lambda top, bottom: [np.nan if r.get(top) is None or not r.get(bottom) else r[top] / r[bottom]  # noqa: E731
                                     for r in mine]
        per_class = "kid_yes" in mine[0]
        axes[0].plot(steps, series("kid_yes" if per_class else "kid"), "o-", color=colour, label=run)
        if per_class:
            axes[0].plot(steps, series("kid_no"), "s--", color=colour)
        axes[1].plot(steps, series("recall_matched"), "o-", color=colour)
        axes[1].plot(steps, series("coverage_matched"), "s--", color=colour)
        for key, style in (("recall_held_out", "-"), ("coverage_held_out", "--")):
            axes[1].axhline(np.nanmean(series(key)), color=colour, linestyle=style, alpha=0.35)
        axes[2].plot(steps, ratio("auc_generated_only", "auc_real"), "o-", color=colour)
        axes[2].plot(steps, ratio("auc_real_plus_generated", "auc_real"), "s--", color=colour)
        axes[3].plot(steps, ratio("cas", "cas_held_out"), "o-", color=colour)
        axes[3].plot(steps, series("called_tumour_no_generated"), "s--", color=colour)
        axes[3].plot(steps, series("called_tumour_no_held_out"), "^:", color=colour)
    two_classes = any("kid_yes" in r for r in rows.values())
    axes[0].set_title("KID at each stage (solid: tumour, dashed: no tumour)" if two_classes else "KID at each stage")
    axes[1].set_title(f"Recall (solid), coverage (dashed); faint: held-out {kind}")
    axes[1].set_ylim(0, 1.02)
    axes[2].axhline(0.85, color="0.5", linestyle=":")
    axes[2].set_title("AUC over real-only: trained on generated (solid),\nreal + generated (dashed); dotted 0.85")
    axes[3].axhline(0.9, color="0.5", linestyle=":")
    axes[3].set_title("CAS over held-out (solid; dotted 0.9); no-tumour called\n"
                      f"tumour: generated (dashed), held-out {kind} (triangles)")
    for ax in axes:
        ax.set_xlabel("step")
    fig.tight_layout()
    fig.legend(*axes[0].get_legend_handles_labels(), fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 0.98))
    return label_synthetic(fig, synthetic)


def stage_grids(grids: dict[str, dict[str, np.ndarray]], synthetic: bool = False):
    """Generated images of each run (a row) at each stage (a column); a conditional generator's
    images alternate no tumour / tumour, so in each tile columns 1 and 3 are no tumour."""
    columns = max(len(stages) for stages in grids.values())
    fig, axes = plt.subplots(len(grids), columns, figsize=(2.8 * columns, 1.7 * len(grids)), squeeze=False)
    for row, (run, stages) in zip(axes, grids.items()):
        for ax, (stage, images) in zip(row, stages.items()):
            ax.imshow(montage([as_uint8(im) for im in images], ncols=4, tile=max(64, images.shape[1])),
                      cmap="gray", vmin=0, vmax=255)
            ax.set_title(f"{run}: {stage}", fontsize=9)
        for ax in row:
            ax.axis("off")
    fig.tight_layout()
    fig.text(0.5, 0, "Generated images at each stage: the same noise vectors at every stage", ha="center", va="top")
    return label_synthetic(fig, synthetic)
