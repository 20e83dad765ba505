"""Datasets on disk: each a named `.npz` under data_root/processed with its manifest, written whole
or not at all and never overwritten by different data; which one a run trains on (by name, or the
one 02 last wrote), and the data settings that come with it. A training split larger than the
memory budget is also written as shards (`<name>.shards/`), which training streams (gan_lib.data.streaming).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np

from ..base.files import read_json, replacing, write_json
from ..base.paths import PROJECT_ROOT, resolve
from ..config import DATASET_FIELDS, KAGGLE_DATASET, VOLUME_FIELDS, GANConfig, folder_key, parse_class_map
from ..records.manifest import DatasetManifest, read_manifest_file, write_manifest_file
from .class_folders import DataError
from .prepare import PrepareResult, prepare_dataset
from .sources import fetch_raw

LATEST = "latest.json"  # in processed/: the dataset 02 last wrote, which training uses if not told
SHARD_MB = 64  # pixels per shard file; each record is the label then the pixels, float32


def dataset_name(cfg: GANConfig) -> str:
    """The name of the dataset these data settings make: it covers every setting that changes its
    contents (a local or Drive folder by a digest of its path, another layout than the report's set
    by a digest of its settings), so none overwrites another."""
    folder = ""
    if cfg.data_source in ("local", "drive"):
        where = str(resolve(cfg.data_dir).resolve()) if cfg.data_source == "local" else cfg.data_dir.strip("/")
        folder = "-" + hashlib.sha256(where.encode()).hexdigest()[:8]
    elif cfg.data_source == "phantom" and cfg.phantom_layout != "images":
        folder = f"-{cfg.phantom_layout}"
    subset = f"_n{cfg.n_images}" if cfg.n_images else ""
    layout = {"kaggle_dataset": cfg.kaggle_dataset if cfg.data_source == "kaggle" else KAGGLE_DATASET,
              "class_folders": parse_class_map(cfg.class_map), "test_folder": folder_key(cfg.test_folder)}
    if cfg.classes == "all":  # the labels' numbers follow the map's order
        layout["class_names"] = cfg.class_names()
    volumes = {name: getattr(cfg, name) for name in VOLUME_FIELDS}
    if volumes != {name: getattr(GANConfig, name) for name in VOLUME_FIELDS}:
        layout["volumes"] = volumes
    if layout != {"kaggle_dataset": KAGGLE_DATASET, "class_folders": parse_class_map(""), "test_folder": ""}:
        folder += "-" + hashlib.sha256(json.dumps(layout, sort_keys=True).encode()).hexdigest()[:8]
    return f"{cfg.data_source}{folder}_{cfg.classes}_{cfg.image_size}px{subset}_h{cfg.holdout:g}_s{cfg.seed}"


def dataset_file(cfg: GANConfig, name: str) -> Path:
    return resolve(cfg.data_root) / "processed" / f"{name}.npz"


def processed_path(cfg: GANConfig) -> Path:
    """The file of the dataset these data settings make (what 02 writes)."""
    return dataset_file(cfg, dataset_name(cfg))


def manifest_path(processed_path: Path) -> Path:
    return processed_path.with_suffix(".manifest.json")


def split_sha256(images: np.ndarray, labels: np.ndarray) -> str:
    """The identity of a split: a hash of its pixels and labels (not of the file, whose zip
    metadata changes with every write)."""
    return _parts_sha256([(images, labels)])[0]


def _parts_sha256(parts) -> tuple[str, np.ndarray]:
    """`split_sha256` of a split given as consecutive (images, labels) parts, read one at a time,
    and all its labels."""
    digest, labels = hashlib.sha256(), []
    for images, part in parts:
        digest.update(np.ascontiguousarray(images, np.float32).tobytes())
        labels.append(part)
    labels = np.concatenate(labels)
    digest.update(np.ascontiguousarray(labels, np.int8).tobytes())
    return digest.hexdigest(), labels


def save_processed(result: PrepareResult, path: Path, latest: bool = True, memory_budget_mb: float = np.inf) -> Path:
    """Write the arrays (one .npz) and the manifest next to it, each whole or not at all, and (with
    `latest`) make it the dataset training uses when not told which; a training split larger than
    `memory_budget_mb` is also written as shards. A different dataset already under the same name is
    never overwritten: runs may have trained on it."""
    train = result.split == "train"
    content = {"content_sha256": split_sha256(result.images, result.labels),
               "train_sha256": split_sha256(result.images[train], result.labels[train]),
               "test_sha256": split_sha256(result.images[~train], result.labels[~train])}
    if path.exists() and manifest_path(path).exists():
        before = read_manifest_file(manifest_path(path), "Move it away with its .npz.").dataset.content_sha256
        if before != content["content_sha256"]:
            raise DataError(f"{path} holds another dataset made with the same settings (its files changed since, "
                            "or an older version of gan_lib wrote it); runs may have trained on it, so it is not "
                            "overwritten. Move it away (with its .manifest.json), or set another data_root.")
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path, "wb") as f:
        np.savez(f, images=result.images, labels=result.labels, split=result.split)
    result.manifest.dataset = dataclasses.replace(
        result.manifest.dataset, file=path.name, file_sha256=hashlib.sha256(path.read_bytes()).hexdigest(), **content)
    write_manifest_file(manifest_path(path), result.manifest)
    if split_mb(result.manifest) > memory_budget_mb:
        write_shards(path, result.images[train], result.labels[train])
    if latest:
        write_json(path.parent / LATEST, {"dataset": path.stem})
    return path


def split_mb(manifest: DatasetManifest, split: str = "train") -> float:
    """Megabytes a split's images take in memory as float32."""
    d = manifest.dataset
    return d.per_split.get(split, 0) * d.image_size ** 2 * 4 / 1e6


def shard_folder(path: Path) -> Path:
    return path.with_suffix(".shards")


def write_shards(path: Path, images: np.ndarray, labels: np.ndarray) -> list[Path]:
    """The training split of the dataset at `path` as shard files of about SHARD_MB each, in its
    order, written whole or not at all (a folder renamed into place), and listed in the manifest."""
    side = images.shape[1]
    per_shard = max(1, int(SHARD_MB * 1e6 // ((side * side + 1) * 4)))
    folder, tmp = shard_folder(path), path.with_suffix(".shards.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    names = []
    for number, start in enumerate(range(0, len(images), per_shard)):
        part = images[start:start + per_shard].reshape(-1, side * side)
        records = np.concatenate([labels[start:start + per_shard, None].astype(np.float32), part], axis=1)
        names.append(f"train-{number:05d}.f32")
        np.ascontiguousarray(records, np.float32).tofile(tmp / names[-1])
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    manifest = read_manifest(path)
    manifest.dataset.shards = {"folder": folder.name, "files": names, "images": len(images), "side": side}
    write_manifest_file(manifest_path(path), manifest)
    print(f"wrote the training split ({len(images)} images) as {len(names)} shard(s) in {folder}")
    return [folder / name for name in names]


def shard_files(path: Path, manifest: DatasetManifest) -> list[Path]:
    """The dataset's shard files; writing them first (from the .npz, once, said aloud) if missing."""
    shards = manifest.dataset.shards
    files = [shard_folder(path) / name for name in shards["files"]] if shards else []
    if not files or not all(f.exists() for f in files):
        print(f"{path.stem} has no shards yet: writing them from {path.name} (once; 02_preprocess writes them when "
              "the training split is over memory_budget_mb)")
        images, labels, _ = load_processed(path, "train")
        files = write_shards(path, images, labels)
    return files


def read_shards(files: list[Path], side: int, limit: int | None = None):
    """(images, labels) of the shards in order, reading one file at a time; the first `limit` only
    if given. Yields per file, so a caller can keep a hash or a sample without holding them all."""
    taken = 0
    for file in files:
        values = np.fromfile(file, np.float32)
        if values.size % (side * side + 1):
            raise DataError(f"{file} is cut short ({values.size * 4} bytes, not a whole number of {side}x{side} "
                            "records): run 02_preprocess again for this dataset (move its .shards folder away first).")
        records = values.reshape(-1, side * side + 1)
        if limit is not None:
            records = records[:limit - taken]
        taken += len(records)
        yield records[:, 1:].reshape(-1, side, side, 1), records[:, 0].astype(np.int8)
        if limit is not None and taken >= limit:
            return


def shards_sha256(files: list[Path], side: int, expected: str | None = None) -> tuple[str, np.ndarray]:
    """`split_sha256` of the images and labels the shards hold (one file in memory at a time), and
    the labels; shards that do not hold the training split the manifest's hash (`expected`) says
    are refused: a damaged shard would train silently, and the run could never be evaluated."""
    sha256, labels = _parts_sha256(read_shards(files, side))
    if expected is not None and sha256 != expected:
        raise DataError(f"the shards in {files[0].parent} do not hold the training split of their dataset (hash "
                        f"{sha256[:12]}, the manifest's {expected[:12]}): one was changed or damaged since 02 wrote it. "
                        "Move the .shards folder away and run 02_preprocess again for this dataset.")
    return sha256, labels


def read_manifest(path: Path) -> DatasetManifest:
    """The manifest of the dataset file at `path`."""
    if not path.exists():
        raise DataError(f"{path} does not exist: run 02_preprocess first (or `make data`), with the same data_source, "
                        "classes, image_size and n_images (on Colab: the same workspace).")
    try:
        return read_manifest_file(manifest_path(path), "Run 02_preprocess again (or `make data`) with the same settings.")
    except ValueError as err:
        raise DataError(str(err)) from None


def load_processed(path: Path, split: str | None = "train") -> tuple[np.ndarray, np.ndarray, DatasetManifest]:
    """Images and labels of one split ("train", "test", or None for all) and the manifest; a split
    whose content is not what its manifest's hash says (the file edited or damaged since 02 wrote
    it) is refused, whichever split it is."""
    manifest = read_manifest(path)
    with np.load(path) as arrays:
        images, labels, splits = arrays["images"], arrays["labels"], arrays["split"]
    chosen = np.ones(len(labels), bool) if split is None else splits == split
    recorded = manifest.dataset.split_hash(split)  # None: not kept when the dataset was written, so unchecked
    if recorded is not None and split_sha256(images[chosen], labels[chosen]) != recorded:
        raise DataError(f"{path}: its {split or 'whole'} split is not the one 02_preprocess wrote (its hash differs "
                        f"from the manifest's, {recorded[:12]}): the file was changed or damaged since. Restore it, "
                        "or run 02_preprocess again under another data_root.")
    return images[chosen], labels[chosen], manifest


def choose_dataset(cfg: GANConfig) -> Path:
    """The dataset file a run trains on: `cfg.dataset` by name, else the one 02 last wrote under
    data_root (said aloud, so nobody trains on other data than they think)."""
    processed = resolve(cfg.data_root) / "processed"
    if cfg.dataset:
        path = dataset_file(cfg, cfg.dataset)
        if not path.exists():
            known = sorted(p.stem for p in processed.glob("*.npz"))
            raise DataError(f"dataset={cfg.dataset!r}: no {path}; the datasets there: {known or 'none'}.")
        return path
    if not (processed / LATEST).exists():
        elsewhere = sorted(str(p.parent.parent.relative_to(PROJECT_ROOT))
                           for p in PROJECT_ROOT.glob(f"outputs/*/data/processed/{LATEST}"))  # make demo's, CI's
        hint = (f" Datasets written under other data roots: {', '.join(elsewhere)} (e.g. `make train "
                f"DATA_ROOT={elsewhere[0]}`).") if elsewhere else ""
        raise DataError(f"No dataset in {processed}: run 02_preprocess first (or `make data`), with the same "
                        f"data_root (on Colab: the same workspace).{hint}")
    try:
        name = read_json(processed / LATEST, "Name the dataset (dataset=...), or run 02_preprocess again.")["dataset"]
    except ValueError as err:
        raise DataError(str(err)) from None
    print(f"dataset: {name} (the one 02 last wrote; dataset=... names another)")
    return dataset_file(cfg, name)


def with_dataset(cfg: GANConfig, path: Path, manifest: DatasetManifest) -> GANConfig:
    """`cfg` with the data settings of the dataset at `path` (a run trains at its size and on its
    classes); a data setting `cfg` was given that differs from the dataset's is refused."""
    made = {name: manifest.config[name] for name in DATASET_FIELDS}
    given = cfg.overridden()
    conflicts = {name: (given[name], made[name]) for name in DATASET_FIELDS if name in given and given[name] != made[name]}
    if conflicts:
        raise ValueError(f"dataset {path.stem} was made with other data settings {conflicts} (given, dataset's): "
                         "leave them out (the dataset decides), or name another dataset.")
    return dataclasses.replace(cfg, dataset=path.stem, **made)


def ensure_processed(cfg: GANConfig) -> Path:
    """The dataset file of `cfg`, prepared from its raw source first if missing (the evaluation's
    two-class file and `make quality`'s data, which no notebook may have written); it does not
    become the one training uses when not told which."""
    if not processed_path(cfg).exists():
        print(f"Preparing {processed_path(cfg).name} ({cfg.classes}) from {cfg.data_source} ...")
        save_processed(prepare_dataset(cfg, fetch_raw(cfg)), processed_path(cfg), latest=False)
    return processed_path(cfg)


def summarise(manifest: DatasetManifest) -> str:
    """A few lines a person reads after preprocessing: counts, splits, and why files were skipped."""
    d = manifest.dataset
    kind = "SYNTHETIC phantom" if d.synthetic else f"real ({d.source})"
    lines = [
        f"{kind} data from {d.source_root}",
        f"{d.files_found} files{' or volumes' if d.volumes else ''} found; {d.unique_usable} unique usable "
        f"images; kept {d.n_images} "
        f"at {d.image_size}x{d.image_size}: per class {d.per_class}, per split {d.per_split} ({d.split_by})",
    ]
    if d.volumes:
        lines.append(f"{d.volumes} volumes sliced: {d.volume_rule}")
    reasons = Counter(s["reason"].split(" of ")[0].split(" (")[0] for s in manifest.skipped)
    if reasons:
        lines.append(f"skipped {len(manifest.skipped)} files{' or slices' if d.volumes else ''}: {dict(reasons)}")
    notes = Counter(e["note"] for e in manifest.images if e["note"])
    if notes:
        lines.append(f"converted: {dict(notes)}")
    return "\n".join(lines)
