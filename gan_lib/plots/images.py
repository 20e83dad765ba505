"""Figures of images: grids, raw files and volumes per class, before/after pairs, pixel histograms;
and the red SYNTHETIC strip every figure of phantom data carries."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from ..data.class_folders import find_class_files
from ..data.images import CLASS_LABELS, as_uint8, montage
from ..data.phantom import SYNTHETIC_LABEL
from ..data.scans import decode_image
from ..data.volumes.finding import find_volumes
from ..data.volumes.readers import is_dicom, is_nifti
from ..data.volumes.slices import preview


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
