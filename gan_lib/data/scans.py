"""One raw file to one square head image: decoded by its content rather than its extension
(some Kaggle `.jpg` files are PNGs), converted to 8-bit grey, cropped to the head (the largest
bright region), padded to a centred square and resized. A file that cannot give a usable head
raises ValueError with the reason, which the dataset's manifest records.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from types import SimpleNamespace

import cv2
import numpy as np

MIN_SIDE = 32  # smaller files cannot hold a usable head at 64 px
FOREGROUND_MIN_SHARE = 0.02  # a "head" smaller than 2 % of the picture is not one
BLANK_RANGE = 8  # grey levels: an image whose darkest and brightest pixels are closer holds no scan
# What libjpeg writes to stderr when the compressed data ends early: it then fills the rest of the
# picture with grey and returns it as if whole.
JPEG_CUT_SHORT = "premature end of data segment"


@dataclass
class Decoded:
    gray: np.ndarray  # uint8, 2-D
    original_size: tuple[int, int]  # (height, width) of the file as stored
    mode: str  # gray, rgb, rgba, palette, gray16, ...
    note: str = ""  # a conversion the user should know about


def sniff_format(data: bytes) -> str | None:
    """The image format from the file's first bytes (some Kaggle `.jpg` files are PNGs)."""
    signatures = {b"\xff\xd8\xff": "jpeg", b"\x89PNG\r\n\x1a\n": "png", b"BM": "bmp",
                  b"GIF8": "gif", b"II*\x00": "tiff", b"MM\x00*": "tiff"}
    for magic, name in signatures.items():
        if data.startswith(magic):
            return name
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


# EXIF orientation -> how to turn the stored pixels upright (1: already upright). OpenCV's
# IMREAD_UNCHANGED, needed for 16-bit and alpha, does not apply it.
ORIENTATIONS = {2: np.fliplr, 3: lambda a: np.rot90(a, 2), 4: np.flipud, 5: np.transpose,
                6: lambda a: np.rot90(a, -1), 7: lambda a: np.rot90(a, 2).T, 8: lambda a: np.rot90(a, 1)}


def exif_orientation(data: bytes) -> int:
    """The EXIF orientation tag (274) of a JPEG, PNG or WebP, 1 if it has none or it cannot be read."""
    from PIL import Image  # matplotlib's dependency, so always installed; imported only here

    try:
        with Image.open(io.BytesIO(data)) as image:
            return int(image.getexif().get(274, 1))
    except Exception:  # noqa: BLE001 - a file Pillow cannot parse has no orientation to apply
        return 1


def decode_image(data: bytes) -> Decoded:
    """Decode to 8-bit grey, or raise ValueError with the reason the file cannot be used."""
    if not data:
        raise ValueError("empty file")
    fmt = sniff_format(data)
    if fmt is None:
        raise ValueError("not an image (unrecognised file signature)")
    # The end marker anywhere: some files carry bytes after it, which decoders ignore; a file cut
    # short before it is also caught by libjpeg's warning below, or fails to decode.
    if fmt == "jpeg" and b"\xff\xd9" not in data:
        raise ValueError("truncated JPEG (no end-of-image marker)")
    if fmt == "png" and b"IEND" not in data:
        raise ValueError("truncated PNG (no IEND chunk)")
    palette = fmt == "png" and len(data) > 25 and data[25] == 3  # PNG colour type 3
    with captured_c_stderr() as warnings:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f"{fmt} data could not be decoded (corrupt)")
    if fmt == "jpeg" and JPEG_CUT_SHORT in warnings.text.lower():
        raise ValueError(f"truncated JPEG (libjpeg: {JPEG_CUT_SHORT}; the missing part would be grey)")
    original_size = img.shape[:2]
    note = ""
    if img.dtype == np.uint16:
        top = int(img.max())
        note = f"16-bit image rescaled to 8-bit by its maximum ({top})"
        img = (img.astype(np.float32) * (255.0 / max(top, 1))).round().astype(np.uint8)
    elif img.dtype != np.uint8:
        raise ValueError(f"unsupported pixel type {img.dtype}")
    channels = 1 if img.ndim == 2 else img.shape[2]
    if channels == 1:
        gray, mode = img.reshape(original_size), "gray"
    elif channels == 3:
        gray, mode = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), "rgb"
    elif channels == 4:
        # Composite over black, the background of every scan.
        alpha = img[..., 3:4].astype(np.float32) / 255.0
        gray = cv2.cvtColor((img[..., :3] * alpha).astype(np.uint8), cv2.COLOR_BGR2GRAY)
        mode = "rgba"
    else:
        raise ValueError(f"unsupported channel count {channels}")
    if palette:
        mode, note = "palette", "palette image expanded to grey"
    elif note:
        mode = "gray16"
    orientation = exif_orientation(data)
    if orientation in ORIENTATIONS:
        gray = ORIENTATIONS[orientation](gray)
        note = "; ".join(filter(None, [note, f"turned upright by its EXIF orientation ({orientation})"]))
    if min(original_size) < MIN_SIDE:
        raise ValueError(f"too small ({original_size[1]}x{original_size[0]} px)")
    if int(gray.max()) - int(gray.min()) < BLANK_RANGE:
        raise ValueError(f"blank image (grey levels {gray.min()} to {gray.max()} only)")
    return Decoded(gray, original_size, mode, note)


def skip_reason(err: Exception) -> str:
    """A skipped input's reason: a ValueError's own words; anything else named as unexpected."""
    return str(err) if isinstance(err, ValueError) else f"unexpected {type(err).__name__}: {err}"


@contextmanager
def captured_c_stderr():
    """What C libraries (libjpeg inside OpenCV) write to this process's stderr meanwhile, captured
    instead of printed: their warnings are the only sign of some damaged files."""
    captured = SimpleNamespace(text="")
    with tempfile.TemporaryFile() as sink:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.text = sink.read().decode(errors="replace")


def head_level(values: np.ndarray) -> float:
    """The grey level (uint8 values) above which a scan is head, not background: half Otsu's
    threshold, so dark tissue inside the skull counts, and at least 8."""
    otsu, _ = cv2.threshold(values, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return max(otsu * 0.5, 8)


def head_mask(gray: np.ndarray) -> np.ndarray:
    """The head as a boolean mask: the largest bright connected region, holes filled.

    Otsu separates the near-black background from tissue; an opening removes noise and thin text,
    and taking the largest component ignores labels and rulers burnt into some scans. Filling the
    holes keeps dark structures inside the skull (ventricles, necrosis) part of the head.
    """
    blurred = cv2.GaussianBlur(gray, (5, 5), 0)
    _, mask = cv2.threshold(blurred, head_level(blurred), 255, cv2.THRESH_BINARY)
    k = max(3, min(gray.shape) // 100) | 1
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n <= 1:
        raise ValueError("no head found (blank image)")
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    if stats[largest, cv2.CC_STAT_AREA] < FOREGROUND_MIN_SHARE * gray.size:
        raise ValueError("no head found (foreground too small)")
    outside = np.pad(labels != largest, 1, constant_values=True).astype(np.uint8)
    cv2.floodFill(outside, None, (0, 0), 2)  # the background reachable from the border
    return outside[1:-1, 1:-1] != 2


def head_box(gray: np.ndarray) -> tuple[int, int, int, int]:
    """Bounding box (x, y, w, h) of the head (`head_mask`)."""
    x, y, w, h = cv2.boundingRect(head_mask(gray).astype(np.uint8))
    return int(x), int(y), int(w), int(h)


def crop_pad_resize(gray: np.ndarray, box: tuple[int, int, int, int], size: int) -> np.ndarray:
    """Crop to `box` with a small margin, pad to a centred square with black, resize to `size`."""
    x, y, w, h = box
    margin = max(2, int(0.03 * max(w, h)))
    x0, y0 = max(0, x - margin), max(0, y - margin)
    x1, y1 = min(gray.shape[1], x + w + margin), min(gray.shape[0], y + h + margin)
    crop = gray[y0:y1, x0:x1]
    side = max(crop.shape)
    top, left = (side - crop.shape[0]) // 2, (side - crop.shape[1]) // 2
    square = np.zeros((side, side), np.uint8)
    square[top:top + crop.shape[0], left:left + crop.shape[1]] = crop
    interp = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
    return cv2.resize(square, (size, size), interpolation=interp)
