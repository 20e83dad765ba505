"""From a folder of raw class folders (`yes/`, `no/`, at any depth) to one training-set file.

Steps: find class folders, hash every file and drop byte-identical duplicates (the Kaggle download
holds each image twice, and the set has duplicates of its own), decode by content rather than by
extension, convert to grey, crop to the head, pad to square, resize (gan_lib.scans), scale to [-1, 1], choose an
optional seeded subset and a seeded per-class hold-out split. Every file ends up either in the
training set or in the manifest's `skipped` list with a reason; nothing is dropped silently.
Training reads the result with `load_processed`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .config import GANConfig
from .images import CLASS_LABELS, to_unit_range
from .scans import crop_pad_resize, decode_image, head_box
from .sources import RawSource, fetch_raw

class DataError(RuntimeError):
    """Nothing usable can be made from the input; raised before any work, with the reason."""


@dataclass
class ImageFile:
    path: Path
    label: str  # "yes" or "no", from the class folder's name
    sha256: str = ""


@dataclass
class PrepareResult:
    images: np.ndarray  # float32, (N, S, S, 1), in [-1, 1]
    labels: np.ndarray  # int8, 1 = tumour
    split: np.ndarray  # "train" / "test"
    originals: list[np.ndarray] = field(repr=False, default_factory=list)  # uint8 before cropping
    manifest: dict = field(repr=False, default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Finding files


def find_class_files(root: Path) -> list[ImageFile]:
    """Every file directly inside a folder named yes/ or no/ (any case) anywhere under `root`."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        label = Path(dirpath).name.lower()
        if label in CLASS_LABELS and Path(dirpath) != root:
            found += [ImageFile(Path(dirpath) / f, label) for f in sorted(filenames)]
    return found


def require_class_folders(root: Path, files: list[ImageFile], classes: str) -> None:
    """Fail before any work when the requested classes have no files at all."""
    wanted = ("yes", "no") if classes == "both" else (classes,)
    have = Counter(f.label for f in files)
    if not files:
        listing = sorted(p.name for p in root.iterdir())[:20]
        raise DataError(f"No yes/ or no/ folder with files under {root} (it holds: {listing}).")
    missing = [c for c in wanted if not have[c]]
    if missing:
        raise DataError(f"No files in a {'/'.join(missing)}/ folder under {root}; found {dict(have)}.")


def dedupe(files: list[ImageFile], root: Path) -> tuple[list[ImageFile], list[dict]]:
    """Keep one file per content hash; shallower paths win (Kaggle's top-level copy).

    Skipped entries name files relative to `root`, as the manifest does.
    """
    def rel(path: Path) -> str:
        return str(path.relative_to(root))

    skipped = []
    groups: dict[str, list[ImageFile]] = {}
    for f in files:
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
            skipped += [{"path": rel(g.path), "label": g.label, "reason": f"same bytes under both yes/ and no/ ({where})"}
                        for g in group]
            continue
        unique.append(keep)
        skipped += [{"path": rel(g.path), "label": g.label, "reason": f"duplicate of {rel(keep.path)}"}
                    for g in group[1:]]
    unique.sort(key=lambda g: (g.label, str(g.path)))
    return unique, skipped


def describe_raw(root: Path) -> dict:
    """Files and unique (by content) images per class folder, before any decoding."""
    files = find_class_files(Path(root))
    unique, _ = dedupe(files, Path(root))
    return {label: {"files": sum(f.label == label for f in files),
                    "unique": sum(f.label == label for f in unique)} for label in CLASS_LABELS}


# ---------------------------------------------------------------------------------------------
# The whole step


def choose_subset_and_split(labels: np.ndarray, n_images: int, holdout: float, seed: int):
    """Seeded subset (0 = all) and per-class hold-out; returns (kept indices, split array).

    Each class draws its hold-out from its own seeded generator, so a class's split is the same
    whether the file holds that class alone or both: a GAN trained on `classes=yes` never sees
    the tumour images that the evaluation's classifier (on `classes=both`) is tested on.
    """
    keep = np.arange(len(labels))
    if 0 < n_images < len(labels):
        keep = np.sort(np.random.default_rng(seed).choice(keep, size=n_images, replace=False))
    split = np.full(len(keep), "train", dtype="<U5")
    for label in np.unique(labels[keep]):
        members = np.flatnonzero(labels[keep] == label)
        n_test = int(round(holdout * len(members)))
        split[np.random.default_rng([seed, int(label)]).choice(members, size=n_test, replace=False)] = "test"
    return keep, split


def prepare_dataset(cfg: GANConfig, raw: RawSource, keep_originals: bool = False) -> PrepareResult:
    """Turn `raw` into the training set described by `cfg`; nothing is written (see `save_processed`)."""
    files = find_class_files(raw.root)
    require_class_folders(raw.root, files, cfg.classes)
    wanted = {"yes", "no"} if cfg.classes == "both" else {cfg.classes}
    unique, skipped = dedupe(files, raw.root)  # over both classes, so an image filed under both is caught
    unique = [f for f in unique if f.label in wanted]
    skipped = [s for s in skipped if s["label"] in wanted]
    found = sum(f.label in wanted for f in files)

    pixels, labels, entries, originals = [], [], [], []
    for f in tqdm(unique, desc="preprocess", unit="img"):
        try:
            decoded = decode_image(f.path.read_bytes())
            box = head_box(decoded.gray)
            pixels.append(crop_pad_resize(decoded.gray, box, cfg.image_size))
        except ValueError as err:
            skipped.append({"path": str(f.path.relative_to(raw.root)), "label": f.label, "reason": str(err)})
            continue
        except Exception as err:  # noqa: BLE001 - one odd file must not end a long run
            skipped.append({"path": str(f.path.relative_to(raw.root)), "label": f.label,
                            "reason": f"unexpected {type(err).__name__}: {err}"})
            continue
        labels.append(CLASS_LABELS[f.label])
        if keep_originals:
            originals.append(decoded.gray)
        entries.append({"source_path": str(f.path.relative_to(raw.root)), "sha256": f.sha256,
                        "label": f.label, "original_size": list(decoded.original_size),
                        "mode": decoded.mode, "head_box_xywh": list(box), "note": decoded.note})
    if not entries:
        raise DataError(f"None of the {len(unique)} unique files under {raw.root} could be used; "
                        f"reasons: {dict(Counter(s['reason'].split(' (')[0] for s in skipped))}")

    labels_arr = np.array(labels, np.int8)
    keep, split = choose_subset_and_split(labels_arr, cfg.n_images, cfg.holdout, cfg.seed)
    entries = [dict(entries[i], split=str(s)) for i, s in zip(keep, split)]
    images = to_unit_range(np.stack([pixels[i] for i in keep]))[..., None]
    manifest = {
        "dataset": {
            "synthetic": raw.synthetic,
            "source": raw.source,
            "source_detail": raw.detail,
            "source_root": str(raw.root),
            "classes": cfg.classes,
            "image_size": cfg.image_size,
            "value_range": [-1.0, 1.0],
            "files_found": found,
            "unique_usable": len(pixels),
            "n_images": len(entries),
            "per_class": dict(Counter(e["label"] for e in entries)),
            "per_split": dict(Counter(e["split"] for e in entries)),
            "seed": cfg.seed,
            "holdout": cfg.holdout,
            "subset": cfg.n_images,
        },
        "config": cfg.to_dict(),
        "images": entries,
        "skipped": sorted(skipped, key=lambda s: s["path"]),
    }
    return PrepareResult(images, labels_arr[keep], split, [originals[i] for i in keep] if originals else [],
                         manifest)


def manifest_path(processed_path: Path) -> Path:
    return processed_path.with_suffix(".manifest.json")


def save_processed(result: PrepareResult, path: Path) -> Path:
    """Write the arrays (one .npz) and the manifest next to it; the manifest holds the file's hash."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, images=result.images, labels=result.labels, split=result.split)
    os.replace(tmp, path)
    result.manifest["dataset"]["file"] = path.name
    result.manifest["dataset"]["file_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    manifest_path(path).write_text(json.dumps(result.manifest, indent=2))
    return path


def load_processed(path: Path, split: str | None = "train") -> tuple[np.ndarray, np.ndarray, dict]:
    """Images and labels of one split ("train", "test", or None for all) and the manifest."""
    if not path.exists():
        raise DataError(f"{path} does not exist: run 02_preprocess first (or `make data`), with the same data_source, "
                        "classes, image_size and n_images (on Colab: the same workspace).")
    with np.load(path) as arrays:
        images, labels, splits = arrays["images"], arrays["labels"], arrays["split"]
    manifest = json.loads(manifest_path(path).read_text())
    chosen = np.ones(len(labels), bool) if split is None else splits == split
    return images[chosen], labels[chosen], manifest


def ensure_processed(cfg: GANConfig) -> Path:
    """The dataset file of `cfg`, prepared from its raw source first if missing (the evaluation's
    two-class file and `make quality`'s data, which no notebook may have written)."""
    if not cfg.processed_path.exists():
        print(f"Preparing {cfg.processed_path.name} ({cfg.classes}) from {cfg.data_source} ...")
        save_processed(prepare_dataset(cfg, fetch_raw(cfg)), cfg.processed_path)
    return cfg.processed_path


def summarise(manifest: dict) -> str:
    """A few lines a person reads after preprocessing: counts, splits, and why files were skipped."""
    d = manifest["dataset"]
    kind = "SYNTHETIC phantom" if d["synthetic"] else f"real ({d['source']})"
    lines = [
        f"{kind} data from {d['source_root']}",
        f"{d['files_found']} files found; {d['unique_usable']} unique usable images; kept {d['n_images']} "
        f"at {d['image_size']}x{d['image_size']}: per class {d['per_class']}, per split {d['per_split']}",
    ]
    reasons = Counter(s["reason"].split(" of ")[0].split(" (")[0] for s in manifest["skipped"])
    if reasons:
        lines.append(f"skipped {len(manifest['skipped'])} files: {dict(reasons)}")
    notes = Counter(e["note"] for e in manifest["images"] if e["note"])
    if notes:
        lines.append(f"converted: {dict(notes)}")
    return "\n".join(lines)
