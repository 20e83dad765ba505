"""Small helpers on image arrays that every layer of gan_lib uses, with numpy and OpenCV only (no
TensorFlow, no matplotlib): the [-1, 1] range the generator works in, the class labels, and
montages of images saved as PNG.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

CLASS_LABELS = {"yes": 1, "no": 0}  # folder name -> label; 1 = tumour
SAMPLE_GRID = 5  # training's sample grids are 5x5, from one fixed noise batch, as the report saved


def to_unit_range(pixels: np.ndarray) -> np.ndarray:
    """uint8 [0, 255] -> float32 [-1, 1], the range of a tanh generator."""
    return pixels.astype(np.float32) / 127.5 - 1.0


def from_unit_range(images: np.ndarray) -> np.ndarray:
    """float [-1, 1] -> uint8 [0, 255], for saving and showing."""
    return np.clip((np.asarray(images) + 1.0) * 127.5, 0, 255).round().astype(np.uint8)


def as_uint8(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image).squeeze()
    return image if image.dtype == np.uint8 else from_unit_range(image)


def grid_labels(n: int) -> np.ndarray:
    """Labels of a conditional run's sample grid: rows alternate no tumour (0) and tumour (1)."""
    return (np.arange(n) // SAMPLE_GRID % 2).astype(np.int32)


def _letterbox(gray: np.ndarray, tile: int, fill: int) -> np.ndarray:
    """Fit an image of any shape into a tile x tile square, aspect kept."""
    scale = tile / max(gray.shape)
    size = (max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale)))
    small = cv2.resize(gray, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    canvas = np.full((tile, tile), fill, np.uint8)
    y, x = (tile - small.shape[0]) // 2, (tile - small.shape[1]) // 2
    canvas[y:y + small.shape[0], x:x + small.shape[1]] = small
    return canvas


def montage(images, ncols: int, tile: int, fill: int = 0, gap: int = 4) -> np.ndarray:
    """Images of any size letterboxed into one uint8 array, white gaps between tiles."""
    nrows = max(1, -(-len(images) // ncols))
    out = np.full((nrows * (tile + gap) - gap, ncols * (tile + gap) - gap), 255, np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, ncols)
        out[r * (tile + gap):r * (tile + gap) + tile, c * (tile + gap):c * (tile + gap) + tile] = \
            _letterbox(as_uint8(image), tile, fill)
    return out


def banner(grid: np.ndarray, text: str) -> np.ndarray:
    """A uint8 image with a line of text in a black strip above it (for PNG files)."""
    strip = np.zeros((22, grid.shape[1]), np.uint8)
    cv2.putText(strip, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, 255, 1, cv2.LINE_AA)
    return np.vstack([strip, grid])


def save_grid(images: np.ndarray, path: Path, label: str = "") -> None:
    """A 5x5 sample grid as PNG; `label` (phantom data's SYNTHETIC label) goes on the image itself."""
    grid = montage(from_unit_range(images[..., 0]), ncols=SAMPLE_GRID, tile=max(images.shape[1], 64))
    cv2.imwrite(str(path), banner(grid, label) if label else grid)
