"""Figures the notebooks show: image grids, before/after pairs, pixel histograms.

Every function returns its matplotlib Figure (so notebooks display it and scripts can save it)
and takes images as uint8 or as floats in [-1, 1].
"""

from __future__ import annotations

from pathlib import Path

import cv2
import matplotlib.pyplot as plt
import numpy as np

from .data import CLASS_LABELS, decode_image, find_class_files, from_unit_range


def _as_uint8(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image).squeeze()
    return image if image.dtype == np.uint8 else from_unit_range(image)


def image_grid(images, titles=None, ncols: int = 8, size: float = 1.6, suptitle: str = ""):
    """Show images in a grid, grey, without axes."""
    n = len(images)
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * size + (0.4 if suptitle else 0)),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(_as_uint8(images[i]), cmap="gray", vmin=0, vmax=255)
            if titles is not None:
                ax.set_title(str(titles[i]), fontsize=7)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def raw_examples(root: Path, per_class: int = 8, synthetic: bool = False):
    """A row of raw files per class, as stored (size in the title), before any cropping."""
    files = find_class_files(Path(root))
    images, titles = [], []
    for label in CLASS_LABELS:
        picked = [f for f in files if f.label == label][:per_class]
        for f in picked:
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
    return image_grid(images, titles, ncols=per_class, suptitle=f"{kind} images per class, as stored")


def before_after(originals, processed, n: int = 6, size: int = 128):
    """Top row: the stored image (letterboxed); bottom row: what training sees."""
    n = min(n, len(processed))
    tops = []
    for gray in originals[:n]:
        scale = size / max(gray.shape)
        small = cv2.resize(gray, (max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale))),
                           interpolation=cv2.INTER_AREA)
        canvas = np.full((size, size), 40, np.uint8)  # grey letterbox shows where the file ended
        y, x = (size - small.shape[0]) // 2, (size - small.shape[1]) // 2
        canvas[y:y + small.shape[0], x:x + small.shape[1]] = small
        tops.append(canvas)
    titles = ["stored"] * n + ["training input"] * n
    return image_grid(tops + [processed[i] for i in range(n)], titles, ncols=n, size=2.0,
                      suptitle="Before (grey = outside the file) and after preprocessing")


def pixel_histogram(images, title: str = "Pixel values of the training set"):
    """Histogram of values in [-1, 1]; the spike at -1 is the black background."""
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.hist(np.asarray(images).ravel(), bins=100, range=(-1, 1), color="0.3", log=True)
    ax.set_xlabel("pixel value (tanh range)")
    ax.set_ylabel("count (log)")
    ax.set_title(title)
    fig.tight_layout()
    return fig
