"""Figures the notebooks show: image grids, before/after pairs, pixel histograms.

Every function returns its matplotlib Figure (so notebooks display it and scripts can save it)
and takes images as uint8 or as floats in [-1, 1].
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import cv2
import matplotlib.pyplot as plt
import numpy as np

from .config import TWO_CLASSES
from .data.class_folders import find_class_files
from .data.images import CLASS_LABELS, SYNTHETIC_TEXT, as_uint8, montage
from .data.phantom import SYNTHETIC_LABEL
from .data.scans import decode_image
from .data.volumes.finding import find_volumes
from .data.volumes.readers import is_dicom, is_nifti
from .data.volumes.slices import preview
from .evaluation.descriptors import DESCRIPTORS
from .runs.logs import sample_grids, smooth


def label_synthetic(fig, synthetic: bool):
    """Mark a figure made from the phantom data, so it is never taken for real scans."""
    if synthetic:
        top = 1 - 0.3 / fig.get_figheight()  # room for the label: 0.3 inch
        fig.tight_layout(pad=0.2, rect=(0, 0, 1, top))
        fig.text(0.5, 0.998, SYNTHETIC_LABEL, ha="center", va="top", color="white", fontsize=9, weight="bold",
                 bbox={"facecolor": "red", "edgecolor": "none", "pad": 2})
    return fig


def image_grid(images, titles=None, ncols: int = 8, tile: int = 128, fill: int = 0, suptitle: str = "",
               synthetic: bool = False):
    """Images of any size, letterboxed into one montage (one imshow: fast even for hundreds).

    `fill` is the letterbox grey; a value other than black shows where a stored file ends.
    """
    gap = 4
    grid = montage(images, ncols, tile, fill, gap)
    inch = 1.6 / tile  # 1.6 inches per tile
    fig, ax = plt.subplots(figsize=(grid.shape[1] * inch, grid.shape[0] * inch + (0.4 if suptitle else 0.1)))
    ax.imshow(grid, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    ax.axis("off")
    for i, title in enumerate(titles if titles is not None else []):
        r, c = divmod(i, ncols)
        ax.text(c * (tile + gap) + 2, r * (tile + gap) + 2, str(title), fontsize=7, va="top", color="yellow")
    if suptitle:
        ax.set_title(suptitle)
    fig.tight_layout(pad=0.2)
    return label_synthetic(fig, synthetic)


def raw_examples(root: Path, per_class: int = 8, synthetic: bool = False, class_map: str = ""):
    """A row of raw image files per class, as stored (size in the title), before any cropping; None
    if the folder holds volumes only."""
    files = [f for f in find_class_files(Path(root), class_map) if not is_nifti(f.path) and not is_dicom(f.path)]
    if not files:  # volumes only: volume_examples shows them
        return None
    images, titles = [], []
    for label in CLASS_LABELS:
        for f in [f for f in files if f.label == label][:per_class]:
            try:
                decoded = decode_image(f.path.read_bytes())
            except ValueError as err:
                images.append(np.zeros((8, 8), np.uint8))
                titles.append(f"{label}: unusable ({err})"[:40])
                continue
            h, w = decoded.original_size
            images.append(decoded.gray)
            titles.append(f"{label} {w}x{h}")
    kind = "SYNTHETIC phantom" if synthetic else "raw"
    return image_grid(images, titles, ncols=per_class, fill=40,
                      suptitle=f"{kind} images per class, as stored (grey = outside the file)")


def volume_examples(root: Path, cfg, n: int = 8, synthetic: bool = False):
    """The middle kept slice of the first `n` volumes, mask outlines in black; None without volumes."""
    sources, _, _ = find_volumes(Path(root), cfg.class_map, cfg.mask_suffix, cfg.volume_modality)
    if not sources:
        return None
    shown = [preview(source, cfg.slice_share) for source in sources[:n]]
    titles = [f"{source.path.name[:20]}\n{title}"[:60] for source, (_, title) in zip(sources, shown)]
    return image_grid([picture for picture, _ in shown], titles, ncols=min(n, 4), fill=40, synthetic=synthetic,
                      suptitle=f"{len(sources)} volumes: the middle kept slice of the first {len(shown)}\n"
                               "(tumour mask outlined in black)")


def before_after(originals, processed, n: int = 6, synthetic: bool = False):
    """Top row: the stored image; bottom row: what training sees."""
    n = min(n, len(processed))
    return image_grid(list(originals[:n]) + [processed[i] for i in range(n)], ncols=n, fill=40,
                      suptitle="Stored (top; grey = outside the file) and after preprocessing (bottom)",
                      synthetic=synthetic)


def pixel_histogram(images, title: str = "Pixel values of the training set", synthetic: bool = False):
    """Histogram of values in [-1, 1]; the spike at -1 is the black background."""
    fig, ax = plt.subplots(figsize=(6, 3))
    counts, edges = np.histogram(np.asarray(images), bins=100, range=(-1, 1))
    ax.stairs(counts, edges, fill=True, color="0.3")
    ax.set_yscale("log")
    ax.set_xlabel("pixel value (tanh range)")
    ax.set_ylabel("count (log)")
    ax.set_title(title)
    fig.tight_layout()
    return label_synthetic(fig, synthetic)


def loss_curves(history: list[dict], title: str = "Losses from history.csv", window: int = 0,
                epochs: list[dict] | None = None, synthetic: bool = False):
    """D and G loss per logged step, and mean D(real) / D(fake): read from the run, never typed in.
    With `window`, the raw values are faint and a trailing mean of that many rows is drawn over
    them; with `epochs` (per-epoch means, `logs.epoch_means`), those are marked at each epoch's end."""
    steps = [r["step"] for r in history]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
    panels = ((axes[0], (("d_loss", "D loss"), ("g_loss", "G loss")), title),
              (axes[1], (("d_real", "mean D(real)"), ("d_fake", "mean D(fake)")), "Discriminator outputs"))
    for ax, series, panel_title in panels:
        for key, label in series:
            values = [r[key] for r in history]
            if window > 1:
                line, = ax.plot(steps, values, alpha=0.25, linewidth=0.8)
                ax.plot(steps, smooth(values, window), color=line.get_color(), label=f"{label} (mean of {window})")
            else:
                line, = ax.plot(steps, values, label=label)
            if epochs:
                ax.plot([e["last_step"] for e in epochs], [e[key] for e in epochs], "o", color=line.get_color(),
                        markeredgecolor="black", label=f"{label}, epoch mean")
        ax.set_xlabel("step")
        ax.set_title(panel_title)
        ax.legend(fontsize=7)
    axes[1].set_ylim(-0.02, 1.02)
    fig.tight_layout()
    return label_synthetic(fig, synthetic)


def sample_evolution(grid_paths: list[Path], max_epochs: int = 10, synthetic: bool = False):
    """Per-epoch sample grids (same noise) side by side; evenly thinned to `max_epochs`, last kept."""
    if len(grid_paths) > max_epochs:
        keep = np.unique(np.linspace(0, len(grid_paths) - 1, max_epochs).round().astype(int))
        grid_paths = [grid_paths[i] for i in keep]
    grids = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in grid_paths]
    return image_grid(grids, titles=[p.stem.replace("_", " ") for p in grid_paths], ncols=min(5, len(grids)),
                      tile=256, suptitle="The fixed noise batch after each epoch", synthetic=synthetic)


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


def kid_curves(health: dict[str, list[dict]], synthetic: bool = False):
    """KID (mean ± std over subsets), diversity and coverage against steps, one line per run, from
    health.csv as `runs.logs.load_history` reads it (a run from before coverage was logged has NaN there,
    so no coverage line); one legend, at the right."""
    from matplotlib.lines import Line2D

    fig, axes = plt.subplots(1, 3, figsize=(15, 3.4))
    for name, rows in health.items():
        steps = [r["step"] for r in rows]
        kid, std = np.array([r["kid"] for r in rows]), np.array([r["kid_std"] for r in rows])
        line, = axes[0].plot(steps, kid, "o-", label=name)
        axes[0].fill_between(steps, kid - std, kid + std, color=line.get_color(), alpha=0.2)
        axes[1].plot(steps, [r["diversity_ratio"] for r in rows], "o-", color=line.get_color())
        axes[2].plot(steps, [r["coverage"] for r in rows], "o-", color=line.get_color())
        axes[2].plot(steps, [r["recall"] for r in rows], "s--", color=line.get_color())
    kids = np.array([r["kid"] for rows in health.values() for r in rows])
    if len(kids) and kids.min() > 0 and kids.max() / kids.min() > 20:  # spans decades: log scale, labelled ticks
        axes[0].set_yscale("log")
    axes[0].set_ylabel("KID")
    axes[0].set_title("KID during training (random-CNN; lower is better)")
    kind = "phantom" if synthetic else "real"
    axes[1].axhline(1.0, color="0.5", linestyle="--")
    axes[1].set_title(f"Diversity over the {kind} set's (dashed: equal)")
    axes[2].set_ylim(0, 1.02)
    if not any(np.isfinite(r["coverage"]) for rows in health.values() for r in rows):
        axes[2].text(0.5, 0.5, "not logged by these runs\n(trained before health.csv had coverage)",
                     ha="center", va="center", transform=axes[2].transAxes)
    axes[2].set_title(f"Share of the {kind} training images reached")
    axes[2].legend([Line2D([], [], color="0.3", marker="o"), Line2D([], [], color="0.3", marker="s", linestyle="--")],
                   ["coverage", "recall"], fontsize=8, loc="lower right")
    for ax in axes:
        ax.set_xlabel("step")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.tight_layout()
    fig.legend(handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 0.98))
    return label_synthetic(fig, synthetic)


def side_by_side(grids: dict[str, np.ndarray], ncols: int = 4):
    """One small grid per named image set, next to each other, same tile size."""
    tile = max(64, next(iter(grids.values())).shape[1])
    fig, axes = plt.subplots(1, len(grids), figsize=(3.2 * len(grids), 3.6))
    for ax, (name, images) in zip(np.atleast_1d(axes), grids.items()):
        ax.imshow(montage([as_uint8(im) for im in images], ncols=ncols, tile=tile), cmap="gray", vmin=0, vmax=255)
        ax.set_title(name)
        ax.axis("off")
    fig.tight_layout()
    return fig


GIF_MIN_WIDTH = 640  # the evolution GIF's frames are scaled up to at least this many pixels across


def write_evolution_gif(run_dir: Path, out: Path, seconds_per_frame: float = 0.8) -> Path:
    """The per-epoch sample grids (one fixed noise batch) as an animated GIF, epoch number burnt in."""
    from PIL import Image

    frames = []
    for path in sample_grids(run_dir):
        grid = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        scale = -(-GIF_MIN_WIDTH // grid.shape[1])  # whole pixels, so a 64-px grid is not blurred
        grid = cv2.resize(grid, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
        cv2.putText(grid, path.stem.replace("_", " "), (6, grid.shape[0] - 8), cv2.FONT_HERSHEY_SIMPLEX,
                    0.7 * scale, 255, 2 * scale)
        frames.append(Image.fromarray(grid))
    if not frames:
        raise FileNotFoundError(f"No samples/epoch_*.png in {run_dir}: no epoch has finished yet.")
    frames[0].save(out, save_all=True, append_images=frames[1:], duration=int(seconds_per_frame * 1000), loop=0,
                   comment=SYNTHETIC_TEXT.encode())
    return out
