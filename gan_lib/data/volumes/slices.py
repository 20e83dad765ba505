"""Axial slices out of 3-D scans (found by `finding`): each volume's kept slices as 8-bit images with
their labels, and the split of the slices by case.

A volume's intensities are scaled per volume: its 0.5th and 99.5th percentiles inside the head
(voxels above half the volume's Otsu threshold) become black and white. The slices kept are the
middle `slice_share` of those that hold head. A slice's label comes from the mask (tumour when
it covers `tumour_min_pixels` voxels or more, no tumour when it covers none; between, the slice
is left out with its reason), or else from the class folder the volume is in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from ...config import GANConfig
from ..class_folders import DataError
from ..scans import crop_pad_resize, head_box, head_level, skip_reason
from .finding import VolumeSource
from .readers import Volume, read_dicom_series, read_nifti

PERCENTILES = (0.5, 99.5)  # of the voxels inside the head: black and white of a volume's slices
HEAD_SLICE_SHARE = 0.05  # a slice holds head when its head area is this share of the largest one's
VOLUME_STREAM = 1000  # the seed stream of the per-case split (image files' classes draw from streams 0 and 1)
VOLUME_RULE = ("each volume in its closest canonical orientation (RAS+), sliced axially; intensities scaled per volume "
               f"by its {PERCENTILES[0]:g}th and {PERCENTILES[1]:g}th percentiles inside the head; the middle "
               "{cfg.slice_share:g} of the slices that hold head kept; with a mask, tumour from "
               "{cfg.tumour_min_pixels} voxels, none: no tumour; split by case")


@dataclass
class VolumeSlice:
    pixels: np.ndarray  # uint8, rows anterior to posterior, patient's right on the left (radiological)
    index: int  # along the canonical axial axis, 0 at the feet
    label: str  # yes | no from a mask; a class folder's label otherwise
    tumour_pixels: int | None  # voxels of the mask in it (None without a mask)


def read_volume(source: VolumeSource) -> Volume:
    return read_nifti(source.path) if source.kind == "nifti" else read_dicom_series(source.files)


def volume_sha256(volume: Volume) -> str:
    """The identity of a scan's voxels, whatever file format or orientation stored them."""
    return hashlib.sha256(np.ascontiguousarray(volume.voxels).tobytes()).hexdigest()


def head_of(voxels: np.ndarray) -> np.ndarray:
    """The voxels inside the head: above half the volume's Otsu threshold (as head_mask does per image)."""
    low, high = float(voxels.min()), float(voxels.max())
    if high - low <= 0:
        raise ValueError("blank volume (every voxel the same)")
    scaled = ((voxels - low) * (255.0 / (high - low))).astype(np.uint8).reshape(1, -1)
    return voxels > low + head_level(scaled) * (high - low) / 255.0


def to_uint8(voxels: np.ndarray, head: np.ndarray) -> np.ndarray:
    """The volume's intensities scaled by its PERCENTILES inside the head."""
    black, white = np.percentile(voxels[head], PERCENTILES)
    return (np.clip((voxels - black) / max(white - black, 1e-6), 0, 1) * 255).round().astype(np.uint8)


def kept_indices(head: np.ndarray, share: float) -> range:
    """The middle `share` of the axial slices that hold head."""
    area = head.sum(axis=(0, 1))
    holding = np.flatnonzero(area >= HEAD_SLICE_SHARE * area.max())
    first, count = int(holding[0]), int(holding[-1] - holding[0] + 1)
    keep = max(1, int(round(share * count)))
    start = first + (count - keep) // 2
    return range(start, start + keep)


def axial_image(voxels: np.ndarray, index: int) -> np.ndarray:
    """Slice `index` of a canonical volume as a picture: anterior at the top, the patient's right on
    the left, as radiologists view axial slices."""
    return np.ascontiguousarray(voxels[:, ::-1, index].T[:, ::-1])


def mask_of(source: VolumeSource, volume: Volume) -> np.ndarray | None:
    """The volume's tumour mask (bool, voxel for voxel), None if its class folder labels it instead."""
    if source.mask is None:
        if not source.folder_label:
            raise ValueError("no label: no tumour mask beside it (mask_suffix) and no class folder above it")
        return None
    try:
        mask = read_nifti(source.mask)
    except ValueError as err:
        raise ValueError(f"its mask {source.mask.name}: {err}") from None
    if mask.voxels.shape != volume.voxels.shape or not np.allclose(mask.affine, volume.affine, atol=1e-3):
        raise ValueError(f"its mask {source.mask.name} does not lie on it (mask {mask.voxels.shape}, volume "
                         f"{volume.voxels.shape} voxels, or another position in space)")
    return mask.voxels > 0


def preview(source: VolumeSource, share: float) -> tuple[np.ndarray, str]:
    """The middle kept slice of a volume as 02 will cut it (its mask's outline drawn in black), and
    which slice it is of the kept ones; a volume that cannot be used: a blank and the reason."""
    try:
        volume = read_volume(source)
        head = head_of(volume.voxels)
        mask = mask_of(source, volume)
    except ValueError as err:
        return np.zeros((8, 8), np.uint8), f"unusable ({err})"
    kept = kept_indices(head, share)
    index = kept[len(kept) // 2]
    picture = axial_image(to_uint8(volume.voxels, head), index)
    if mask is not None:
        outline, _ = cv2.findContours(axial_image(mask.astype(np.uint8), index), cv2.RETR_EXTERNAL,
                                      cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(picture, outline, -1, 0, 1)
    return picture, f"z {index} of {kept.start}-{kept.stop - 1}"


def slices_of(source: VolumeSource, volume: Volume, share: float, tumour_min_pixels: int,
              skipped: list[dict], where: str) -> Iterator[VolumeSlice]:
    """The kept slices of one read volume with their labels; a slice that is neither class (a
    little tumour) gets a skipped entry naming `where` and its index."""
    head = head_of(volume.voxels)
    pixels = to_uint8(volume.voxels, head)
    mask = mask_of(source, volume)
    for index in kept_indices(head, share):
        area = None if mask is None else int(mask[:, :, index].sum())
        if area is None:
            label = source.folder_label
        elif area >= tumour_min_pixels or area == 0:
            label = "yes" if area else "no"
        else:
            skipped.append({"path": f"{where} slice {index}", "label": "yes", "reason": f"a little tumour ({area} "
                            f"voxels, under tumour_min_pixels={tumour_min_pixels}): neither class"})
            continue
        yield VolumeSlice(axial_image(pixels, index), index, label, area)


def read_volume_slices(volumes: list[VolumeSource], cfg: GANConfig, root: Path, skipped: list[dict],
                       keep_originals: bool):
    """Each volume's kept slices as square head images and their manifest entries; a volume that
    cannot be used, or holds the same voxels as an earlier one, gets its reason in `skipped`."""
    pixels, entries, originals, seen = [], [], [], {}
    for source in tqdm(volumes, desc="volumes", unit="volume"):
        where = str(source.path.relative_to(root))
        try:
            volume = read_volume(source)
            digest = volume_sha256(volume)
            if digest in seen:
                raise ValueError(f"the same voxels as {seen[digest]}")
            seen[digest] = where
            for piece in slices_of(source, volume, cfg.slice_share, cfg.tumour_min_pixels, skipped, where):
                try:
                    box = head_box(piece.pixels)
                except ValueError as err:
                    skipped.append({"path": f"{where} slice {piece.index}", "label": piece.label, "reason": str(err)})
                    continue
                pixels.append(crop_pad_resize(piece.pixels, box, cfg.image_size))
                originals.append(piece.pixels if keep_originals else None)
                entries.append({"source_path": where, "sha256": digest, "label": piece.label,
                                "original_size": list(piece.pixels.shape), "mode": source.kind,
                                "head_box_xywh": list(box), "note": volume.note, "slice": piece.index,
                                "case": source.case, "tumour_pixels": piece.tumour_pixels,
                                "mask": str(source.mask.relative_to(root)) if source.mask else None})
        except Exception as err:  # noqa: BLE001 - one odd volume must not end a long run
            skipped.append({"path": where, "label": source.folder_label, "reason": skip_reason(err)})
    return pixels, entries, originals


def split_by_case(cases: list[str], groups: list[int], holdout: float, seed: int) -> np.ndarray:
    """"train" or "test" per volume slice, drawn per case (a scan and its other sequences), so no
    case's slices are on both sides; drawn over every case found, whichever classes are kept.
    `groups`: per slice, -1 if a mask labels its case's slices (each such case holds both classes),
    else the label its class folder gives; each group holds out `holdout` of its cases (at least one
    of two or more), from a seeded draw of its own, so a class labelled by folders is never left
    without held-out cases."""
    group_of = dict(zip(cases, groups))
    test = set()
    for group in sorted(set(groups)):
        names = sorted(case for case, g in group_of.items() if g == group)
        n_test = min(len(names) - 1, max(1, int(round(holdout * len(names))))) if holdout > 0 else 0
        stream = [seed, VOLUME_STREAM] + ([group] if group >= 0 else [])
        test |= {names[i] for i in np.random.default_rng(stream).choice(len(names), n_test, replace=False)}
    if holdout > 0 and (not test or test == set(cases)):
        raise DataError(f"holdout={holdout} needs a case to test on and one to train on, and the data holds "
                        f"{len(group_of)} volume case(s) ({', '.join(sorted(group_of)[:3])}): the slices of one case "
                        "stay on one side of the split (DICOM series of one PatientID are one case).")
    return np.array(["test" if case in test else "train" for case in cases], dtype="<U5")
