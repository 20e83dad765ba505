"""From a raw folder to one training-set file: image files in class folders (`yes/`, `no/`, or those
`class_map` names, at any depth), and 3-D scans anywhere below it (gan_lib.data.volumes).

Steps: find class folders (gan_lib.data.class_folders), hash every file and drop byte-identical
duplicates (the Kaggle download holds each image twice, and the set has duplicates of its own),
decode by content rather than by extension, convert to grey, crop to the head, pad to square,
resize (gan_lib.data.scans); cut each volume into labelled axial slices; scale to [-1, 1], choose an
optional seeded subset and a seeded per-class hold-out split (a volume's slices: per case; or the
dataset's own: `test_folder`). The labels are no (0) and yes (1), or with classes="all" each class
folder's own (`GANConfig.class_names`). Every file ends up either in the training set or in the
manifest's `skipped` list with a reason; nothing is dropped silently.
`gan_lib.data.storage` stores the result and reads it back.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from ..config import GANConfig, folder_key, parse_class_map
from ..records.manifest import DatasetManifest, DatasetSummary
from .class_folders import DataError, ImageFile, find_class_files, require_class_folders
from .images import CLASS_LABELS, to_unit_range
from .scans import crop_pad_resize, decode_image, head_box, skip_reason
from .sources import RawSource
from .volumes.finding import find_volumes, volume_files
from .volumes.slices import VOLUME_RULE, read_volume_slices, split_by_case

# Two scans whose 32x32 thumbnails differ by less than this mean (grey levels) are one scan stored
# twice (re-encoded, resized): on the Kaggle set such pairs differ by 0.01-6.3, the closest two
# different scans by 7.4.
NEAR_DUPLICATE_MAD = 6.5


@dataclass
class PrepareResult:
    images: np.ndarray  # float32, (N, S, S, 1), in [-1, 1]
    labels: np.ndarray  # int8, 1 = tumour
    split: np.ndarray  # "train" / "test"
    manifest: DatasetManifest = field(repr=False)
    originals: list[np.ndarray] = field(repr=False, default_factory=list)  # uint8 before cropping


def dedupe(files: list[ImageFile], root: Path) -> tuple[list[ImageFile], list[dict]]:
    """Keep one file per content hash; shallower paths win (Kaggle's top-level copy).

    Skipped entries name files relative to `root`, as the manifest does.
    """
    def rel(path: Path) -> str:
        return str(path.relative_to(root))

    skipped = []
    groups: dict[str, list[ImageFile]] = {}
    for f in files:
        if f.not_regular:
            skipped.append({"path": rel(f.path), "label": f.label, "reason": f.not_regular})
            continue
        try:
            f.sha256 = hashlib.sha256(f.path.read_bytes()).hexdigest()
        except OSError as err:
            skipped.append({"path": rel(f.path), "label": f.label, "reason": f"unreadable: {err.strerror or err}"})
            continue
        groups.setdefault(f.sha256, []).append(f)
    unique = []
    for group in groups.values():
        group.sort(key=lambda g: (len(g.path.parts), str(g.path)))
        keep = group[0]
        if len({g.label for g in group}) > 1:
            where = ", ".join(rel(g.path) for g in group)
            reason = f"same bytes under both {both_classes(g.label for g in group)} ({where})"
            skipped += [{"path": rel(g.path), "label": g.label, "reason": reason} for g in group]
            continue
        unique.append(keep)
        skipped += [{"path": rel(g.path), "label": g.label, "reason": f"duplicate of {rel(keep.path)}"}
                    for g in group[1:]]
    unique.sort(key=lambda g: (g.label, str(g.path)))
    return unique, skipped


def both_classes(labels) -> str:
    """Two classes a scan was filed under, as the skipped entries name them ("yes/ and no/")."""
    first, second = sorted(set(labels), reverse=True)[:2]
    return f"{first}/ and {second}/"


def describe_raw(root: Path, cfg: GANConfig) -> dict:
    """Image files (not volumes) and unique (by content) images per class, before any decoding."""
    taken = volume_files(Path(root), cfg.mask_suffix)
    files = [f for f in find_class_files(Path(root), cfg.class_map) if f.path not in taken]
    unique, _ = dedupe(files, Path(root))
    return {label: {"files": sum(f.label == label for f in files),
                    "unique": sum(f.label == label for f in unique)} for label in CLASS_LABELS}


def choose_subset_and_split(labels: np.ndarray, n_images: int, holdout: float, seed: int,
                            given: np.ndarray | None = None):
    """Seeded subset (0 = all) and per-class hold-out; returns (kept indices, split array).

    Each class draws its hold-out from its own seeded generator, so a class's split is the same
    whether the file holds that class alone or both: a GAN trained on `classes=yes` never sees
    the tumour images that the evaluation's classifier (on `classes=both`) is tested on. `given`
    (a split per image: the dataset's own test folder, or a volume's side of the split) replaces the
    drawn hold-out wherever it is not "".
    """
    keep = np.arange(len(labels))
    if n_images > len(labels):
        raise DataError(f"n_images={n_images}, but the data holds {len(labels)} usable images: ask for at most "
                        f"{len(labels)}, or 0 for all.")
    if 0 < n_images < len(labels):
        keep = np.sort(np.random.default_rng(seed).choice(keep, size=n_images, replace=False))
    split = np.full(len(keep), "", dtype="<U5") if given is None else given[keep].astype("<U5")
    for label in np.unique(labels[keep]):
        members = np.flatnonzero((labels[keep] == label) & (split == ""))
        if not members.size:
            continue
        n_test = int(round(holdout * len(members)))
        if n_test >= len(members):
            raise DataError(f"holdout={holdout} holds out all {len(members)} images of class {int(label)}, leaving "
                            "none to train on: use a smaller holdout.")
        split[np.random.default_rng([seed, int(label)]).choice(members, size=n_test, replace=False)] = "test"
    split[split == ""] = "train"
    for label in np.unique(labels[keep]):
        if not (split[labels[keep] == label] == "train").any():
            raise DataError(f"Every image of class {int(label)} is on the test side (its test folder, or its "
                            "volumes' side of the split): none to train on.")
    return keep, split


def read_rasters(files: list[ImageFile], cfg: GANConfig, root: Path, skipped: list[dict], keep_originals: bool):
    """Each 2-D image file as a square head image and its manifest entry (its reason in `skipped` if unusable)."""
    pixels, entries, originals = [], [], []
    for f in tqdm(files, desc="preprocess", unit="img"):
        try:
            decoded = decode_image(f.path.read_bytes())
            box = head_box(decoded.gray)
            pixels.append(crop_pad_resize(decoded.gray, box, cfg.image_size))
        except Exception as err:  # noqa: BLE001 - one odd file must not end a long run
            skipped.append({"path": str(f.path.relative_to(root)), "label": f.label, "reason": skip_reason(err)})
            continue
        originals.append(decoded.gray if keep_originals else None)
        entries.append({"source_path": str(f.path.relative_to(root)), "sha256": f.sha256,
                        "label": f.label, "original_size": list(decoded.original_size),
                        "mode": decoded.mode, "head_box_xywh": list(box), "note": decoded.note})
    return pixels, entries, originals


def prepare_dataset(cfg: GANConfig, raw: RawSource, keep_originals: bool = False) -> PrepareResult:
    """Turn `raw` into the training set described by `cfg`; nothing is written (gan_lib.data.storage.save_processed)."""
    each, names = cfg.classes == "all", cfg.class_names()  # all: each class folder is a label of its own
    volumes, claimed, skipped = find_volumes(raw.root, cfg.class_map, cfg.mask_suffix, cfg.volume_modality, each)
    files = [f for f in find_class_files(raw.root, cfg.class_map, each) if f.path not in claimed]
    require_class_folders(raw.root, files, cfg.classes, cfg.class_map, volumes=len(volumes))
    wanted = set(names) if cfg.classes in ("both", "all") else {cfg.classes}
    # Both classes are read whatever `classes` says, so a scan filed under both is caught and a
    # class's images are the same in a one-class and a two-class dataset.
    unique, duplicates = dedupe(files, raw.root)
    found = sum(f.label in wanted for f in files) + len(volumes)
    pixels, entries, originals = read_rasters(unique, cfg, raw.root, skipped, keep_originals)
    kept, near = drop_near_duplicates(pixels, entries)
    # Neighbouring slices of a volume look alike without being one scan stored twice: they are not compared.
    slices = read_volume_slices(volumes, cfg, raw.root, skipped, keep_originals)
    if each and any(e["label"] not in names for e in slices[1]):
        raise DataError("classes='all' keeps each class folder as a label, and tumour masks label slices tumour or "
                        f"no tumour, not {'/, '.join(names)}/: use classes='both' for volumes with masks.")
    kept += range(len(pixels), len(pixels) + len(slices[0]))
    pixels, entries, originals = pixels + slices[0], entries + slices[1], originals + slices[2]
    groups = [-1 if e["mask"] else names.index(e["label"]) for e in slices[1]]
    sides = split_by_case([e["case"] for e in slices[1]], groups, cfg.holdout, cfg.seed) if slices[1] else []
    for entry, side in zip(slices[1], sides):
        entry["case_split"] = str(side)
    kept = [i for i in kept if entries[i]["label"] in wanted]
    # a volume that could not be read has no class ("") and is listed whatever classes are kept
    skipped = [s for s in skipped + duplicates + near if s["label"] in wanted or not s["label"]]
    pixels, entries, originals = [pixels[i] for i in kept], [entries[i] for i in kept], [originals[i] for i in kept]
    labels = [names.index(e["label"]) for e in entries]
    if not entries:
        raise DataError(f"None of the {found} files of class {cfg.classes} under {raw.root} could be used; "
                        f"reasons: {dict(Counter(s['reason'].split(' (')[0] for s in skipped))}")
    absent = sorted(wanted - {e["label"] for e in entries})
    if absent:
        raise DataError(f"No usable image of class {' or '.join(absent)} under {raw.root}; per class: "
                        f"{dict(Counter(e['label'] for e in entries))}.")

    labels_arr = np.array(labels, np.int8)
    sides = np.array([e.pop("case_split", "") for e in entries], dtype="<U5")
    given = given_split([e["source_path"] for e in entries], cfg.test_folder, raw.root) if cfg.test_folder else sides
    keep, split = choose_subset_and_split(labels_arr, cfg.n_images, cfg.holdout, cfg.seed, given)
    entries = [dict(entries[i], split=str(s)) for i, s in zip(keep, split)]
    images = to_unit_range(np.stack([pixels[i] for i in keep]))[..., None]
    manifest = DatasetManifest(
        dataset=DatasetSummary(
            synthetic=raw.synthetic,
            source=raw.source,
            source_detail=raw.detail,
            source_root=str(raw.root),
            classes=cfg.classes,
            image_size=cfg.image_size,
            value_range=[-1.0, 1.0],
            files_found=found,
            unique_usable=len(pixels),
            n_images=len(entries),
            per_class=dict(Counter(e["label"] for e in entries)),
            per_split=dict(Counter(e["split"] for e in entries)),
            seed=cfg.seed,
            holdout=cfg.holdout if not cfg.test_folder else None,
            split_by=split_rule(cfg, entries),
            class_folders=parse_class_map(cfg.class_map),
            subset=cfg.n_images,
            class_names=list(names),
            volumes=len({e["source_path"] for e in entries if "slice" in e}),
            volume_rule=VOLUME_RULE.format(cfg=cfg) if any("slice" in e for e in entries) else "",
        ),
        config=cfg.to_dict(),
        images=entries,
        skipped=sorted(skipped, key=lambda s: s["path"]),
    )
    return PrepareResult(images, labels_arr[keep], split, manifest,
                         [originals[i] for i in keep] if keep_originals else [])


def split_rule(cfg: GANConfig, entries: list[dict]) -> str:
    """How the images were split, in words: by test folder, per class, or per case for volumes' slices."""
    if cfg.test_folder:
        return f"the dataset's own folder {cfg.test_folder}/"
    images, slices = any("slice" not in e for e in entries), any("slice" in e for e in entries)
    how = ("per class" if not slices else "of the volume cases (each case's slices on one side)" if not images
           else "per class for image files, of the cases for volumes")
    return f"a seeded hold-out of {cfg.holdout:g} {how}"


def given_split(paths: list[str], test_folder: str, root: Path) -> np.ndarray:
    """"test" for each file below a folder named `test_folder` (any case), else "train": the split
    a dataset ships with (e.g. Kaggle's four-class set: Training/ and Testing/)."""
    name = folder_key(test_folder)
    split = np.array(["test" if name in (folder_key(p) for p in Path(path).parts[:-1]) else "train" for path in paths],
                     dtype="<U5")
    if not (split == "test").any():
        raise DataError(f"test_folder={test_folder!r}, but no usable image is below a folder of that name under "
                        f"{root}: name the dataset's test folder, or test_folder='' to hold out a share of each class.")
    return split


def drop_near_duplicates(pixels: list[np.ndarray], entries: list[dict]) -> tuple[list[int], list[dict]]:
    """The indices to keep, and a skipped entry for every scan that is an earlier one stored again
    (re-encoded or resized: 32x32 thumbnails within NEAR_DUPLICATE_MAD grey levels), so no scan sits
    on both sides of the hold-out split. A scan under both yes/ and no/ is dropped from both.

    Each scan is compared in full only with the kept ones whose 4x4 grid of block means is within
    the threshold: that distance is never larger than the full one, so none is missed, and tens of
    thousands of scans take seconds, not hours."""
    n = len(pixels)
    thumbs = np.stack([cv2.resize(p, (32, 32), interpolation=cv2.INTER_AREA) for p in pixels]).astype(np.float32) \
        if pixels else np.zeros((0, 32, 32), np.float32)
    coarse = thumbs.reshape(n, 4, 8, 4, 8).mean(axis=(2, 4)).reshape(n, 16)
    kept = np.zeros(n, bool)
    skipped: list[dict] = []
    for i in range(n):
        earlier = np.flatnonzero(kept[:i])
        near = earlier[np.abs(coarse[earlier] - coarse[i]).mean(axis=1) < NEAR_DUPLICATE_MAD]
        if near.size:
            distance = np.abs(thumbs[near] - thumbs[i]).mean(axis=(1, 2))
            if distance.min() < NEAR_DUPLICATE_MAD:
                j = int(near[np.argmin(distance)])
                a, b = entries[j], entries[i]
                detail = f"mean difference {distance.min():.1f} grey levels"
                if a["label"] != b["label"]:
                    kept[j] = False
                    reason = (f"same scan under both {both_classes((a['label'], b['label']))} ({a['source_path']}, "
                              f"{b['source_path']}; {detail})")
                    skipped += [{"path": e["source_path"], "label": e["label"], "reason": reason} for e in (a, b)]
                else:
                    skipped.append({"path": b["source_path"], "label": b["label"],
                                    "reason": f"near-duplicate of {a['source_path']} ({detail})"})
                continue
        kept[i] = True
    return [int(i) for i in np.flatnonzero(kept)], skipped
