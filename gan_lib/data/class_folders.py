"""A raw folder's files by class: every file directly inside a class folder (`yes/`, `no/`, or those
`class_map` names, at any depth), each with its label, and the checks that the classes asked for
are there before any work."""

from __future__ import annotations

import difflib
import os
import stat
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..config import folder_key, parse_class_map


class DataError(RuntimeError):
    """Nothing usable can be made from the input; raised before any work, with the reason."""


@dataclass
class ImageFile:
    path: Path
    label: str  # "yes" or "no", from the class folder's name (through class_map); with classes="all" that name
    sha256: str = ""
    not_regular: str = ""  # a FIFO, socket, device or broken link: never opened


def find_class_files(root: Path, class_map: str = "", each_folder: bool = False) -> list[ImageFile]:
    """Every file directly inside a class folder (any case) anywhere under `root`: yes/ and no/, or
    the folders `class_map` names (gan_lib.config.parse_class_map). Each is labelled yes or no, or
    with `each_folder` (classes="all") by its class folder's name."""
    folders = parse_class_map(class_map)
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        label = class_label(Path(dirpath).name, folders, each_folder)
        if label and Path(dirpath) != root:
            found += [ImageFile(Path(dirpath) / f, label, not_regular=_not_regular(Path(dirpath) / f))
                      for f in sorted(filenames)]
    return found


def class_label(folder: str, folders: dict[str, str], each_folder: bool) -> str:
    """The label a class folder gives ("" if it is none): yes or no, or with `each_folder` its name."""
    key = folder_key(folder)
    return (key if each_folder else folders[key]) if key in folders else ""


def _not_regular(path: Path) -> str:
    """Why a directory entry is not a regular file ("" if it is): reading a FIFO would hang."""
    try:
        mode = os.stat(path).st_mode
    except OSError as err:
        return f"unreadable: {err.strerror or err}"
    if stat.S_ISREG(mode):
        return ""
    kinds = {stat.S_ISFIFO: "a FIFO", stat.S_ISSOCK: "a socket", stat.S_ISCHR: "a device", stat.S_ISBLK: "a device"}
    return "not a regular file (" + next((name for test, name in kinds.items() if test(mode)), "special") + ")"


def require_class_folders(root: Path, files: list[ImageFile], classes: str, class_map: str = "",
                          volumes: int = 0) -> None:
    """Fail before any work when the requested classes have no files at all (with `volumes`, the
    classes come from their masks too, so only a misspelt class map fails here)."""
    folders = parse_class_map(class_map)
    wanted = tuple(folders) if classes == "all" else ("yes", "no") if classes == "both" else (classes,)
    have = Counter(f.label for f in files)
    if not files and not volumes:
        entries = sorted(root.iterdir())
        subfolders = [p.name for p in entries if p.is_dir()]
        expected = ", ".join(f"{name}/" for name in folders)
        if not subfolders:  # a flat folder: no map can give its files labels
            raise DataError(f"{root} holds files but no class folders ({len(entries)} entries, e.g. "
                            f"{[p.name for p in entries[:5]]}): the label of each scan comes from its folder, so put "
                            f"tumour scans in yes/ and scans without a tumour in no/.")
        raise DataError(f"No class folder ({expected}) with files under {root}; its folders are {subfolders[:20]}. "
                        f"To use them, map them to the labels with the class_map setting (CLASS_MAP with make), e.g. "
                        f"{';'.join(['yes=' + ','.join(subfolders[:-1] or subfolders), 'no=' + subfolders[-1]])!r} "
                        f"(docs/data.md).")
    if class_map.strip():  # a misspelt folder would otherwise leave its images out without a word
        present = {folder_key(d) for _, dirs, _ in os.walk(root) for d in dirs}
        absent = [name for name in folders if name not in present]
        if absent:
            hints = {name: difflib.get_close_matches(name, present, n=1, cutoff=0.6) for name in absent}
            raise DataError(f"class_map names folder(s) not found under {root}: " + ", ".join(
                f"{name!r}" + (f" (did you mean {hints[name][0]!r}?)" if hints[name] else "") for name in absent)
                + f"; its folders are {sorted(present)[:20]}.")
    missing = [c for c in wanted if not have[c]]
    if missing and not volumes:
        names = [f"{name}/" for name, label in folders.items() if label in missing or name in missing]
        raise DataError(f"No files in a {' or '.join(names)} folder under {root}; found {dict(have)}.")
