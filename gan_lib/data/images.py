"""Small helpers on image arrays that every layer of gan_lib uses, with numpy and OpenCV only (no
TensorFlow, no matplotlib): the [-1, 1] range the generator works in, the class labels, and
montages of images saved as PNG.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np

from ..base.files import write_bytes

CLASS_LABELS = {"yes": 1, "no": 0}  # folder name -> label; 1 = tumour
SAMPLE_GRID = 5  # training's sample grids are 5x5, from one fixed noise batch, as the report saved
# The PNG text chunk that marks a generated image once it has left its folder (`png_text` reads it).
SYNTHETIC_KEY = "Synthetic"
SYNTHETIC_TEXT = "yes: made by a GAN (gan_lib), not a real MRI scan"
GENERATOR_KEY = "Generator"  # its text: JSON naming the run, preset, seeds, step and label


def to_unit_range(pixels: np.ndarray) -> np.ndarray:
    """uint8 [0, 255] -> float32 [-1, 1], the range of a tanh generator."""
    return pixels.astype(np.float32) / 127.5 - 1.0


def from_unit_range(images: np.ndarray) -> np.ndarray:
    """float [-1, 1] -> uint8 [0, 255], for saving and showing."""
    return np.clip((np.asarray(images) + 1.0) * 127.5, 0, 255).round().astype(np.uint8)


def as_uint8(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image).squeeze()
    return image if image.dtype == np.uint8 else from_unit_range(image)


def grid_labels(n: int, n_classes: int = 2) -> np.ndarray:
    """Labels of a conditional run's sample grid: each row one class, in turn (two classes: rows
    alternate no tumour (0) and tumour (1))."""
    return (np.arange(n) // SAMPLE_GRID % n_classes).astype(np.int32)


CLASS_TITLES = {"no": "no tumour", "yes": "tumour"}  # a class folder named otherwise is shown by its name


def grid_rows_caption(names: tuple[str, ...]) -> str:
    """What the rows of a conditional run's sample grid hold, e.g. "rows: no tumour, tumour, no tumour, ..."."""
    titles = [CLASS_TITLES.get(name, name) for name in names]
    return "rows: " + ", ".join((titles * 2)[:max(3, len(titles))]) + ", ..."


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
    """A uint8 image with text (one strip per line) in black strips above it (for PNG files)."""
    strips = []
    for line in text.splitlines():
        strip = np.zeros((22, grid.shape[1]), np.uint8)
        cv2.putText(strip, line, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, 255, 1, cv2.LINE_AA)
        strips.append(strip)
    return np.vstack([*strips, grid])


def by_grid_rows(labels: np.ndarray, n_classes: int = 2) -> np.ndarray:
    """Indices of SAMPLE_GRID**2 images whose classes follow `grid_labels` row by row, so a grid of
    real scans reads like a conditional run's generated grid (rows alternate no tumour, tumour)."""
    wanted = grid_labels(SAMPLE_GRID**2, n_classes)
    pools = {label: np.flatnonzero(labels == label) for label in np.unique(wanted)}
    taken = {label: 0 for label in pools}
    picks = []
    for label in wanted:  # a class with too few scans repeats them
        picks.append(pools[label][taken[label] % len(pools[label])])
        taken[label] += 1
    return np.array(picks)


def synthetic_marks(source: dict) -> dict[str, str]:
    """The text chunks of a generated image: the synthetic marker and where it came from."""
    return {SYNTHETIC_KEY: SYNTHETIC_TEXT, GENERATOR_KEY: json.dumps(source, ensure_ascii=False, sort_keys=True)}


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_png(path: Path, pixels: np.ndarray, text: dict[str, str] | None = None) -> None:
    """A uint8 image as PNG with `text` as UTF-8 text chunks (iTXt), written whole or not at all:
    a file that cannot be encoded or written (a full disk) raises instead of leaving a broken PNG."""
    ok, encoded = cv2.imencode(".png", pixels)
    if not ok:
        raise OSError(f"{path}: OpenCV could not encode the image as PNG")
    png = encoded.tobytes()
    header_end = 8 + 25  # the signature, then IHDR (always first, 13 bytes of data)
    chunks = b"".join(_chunk(b"iTXt", key.encode("latin-1") + b"\0\0\0\0\0" + value.encode())
                      for key, value in (text or {}).items())
    write_bytes(path, png[:header_end] + chunks + png[header_end:])


def png_text(path: Path) -> dict[str, str]:
    """The iTXt and tEXt chunks of a PNG file, keyword -> text (what `write_png` wrote)."""
    data, found, at = Path(path).read_bytes(), {}, 8
    while at + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        body = data[at + 8:at + 8 + length]
        if kind == b"tEXt":
            key, _, value = body.partition(b"\0")
            found[key.decode("latin-1")] = value.decode("latin-1")
        elif kind == b"iTXt":
            key, _, rest = body.partition(b"\0")
            _language, _, rest = rest[2:].partition(b"\0")
            _translated, _, value = rest.partition(b"\0")
            found[key.decode("latin-1")] = value.decode()
        at += 12 + length
    return found


def save_grid(images: np.ndarray, path: Path, caption: str = "", text: dict[str, str] | None = None) -> None:
    """A 5x5 sample grid as PNG: `caption` (what it shows, phantom data's SYNTHETIC label) goes on
    the image itself, `text` into its text chunks."""
    grid = montage(from_unit_range(images[..., 0]), ncols=SAMPLE_GRID, tile=max(images.shape[1], 64))
    write_png(path, banner(grid, caption) if caption else grid, text)
