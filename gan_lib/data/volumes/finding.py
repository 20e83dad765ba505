"""Which 3-D scans a raw folder holds: NIfTI files (by their ending) and DICOM series (by their
content), the tumour mask beside each (BraTS naming: `<case>_seg.nii.gz`), the class folder above
each, and the case each belongs to (a scan and its other sequences), which the split keeps whole.
Only DICOM headers are read here, never pixels.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ...config import GANConfig, folder_key, parse_class_map
from ..class_folders import class_label
from .readers import is_dicom, is_nifti, nifti_stem, reader

# Names of MRI sequences that end a scan's file name (BraTS 2020-2023, BIDS) or name its folder: the
# rest of the name is the case, so a case's sequences stay on one side of the split.
SEQUENCES = {"t1", "t1ce", "t1c", "t1gd", "t1n", "t1w", "t2", "t2w", "t2f", "flair", "pd", "pdw", "dwi", "adc", "swi",
             "mprage"}
SEPARATOR = re.compile(r"[_-]")


@dataclass
class VolumeSource:
    path: Path  # the NIfTI file, or the DICOM series' folder
    kind: str  # nifti | dicom
    case: str  # the scan's group: slices of one case never straddle the train/test split
    files: list[Path] = field(default_factory=list)  # a DICOM series' files
    mask: Path | None = None
    folder_label: str = ""  # the label of the nearest class folder above it, if any


def find_volumes(root: Path, class_map: str, mask_suffix: str, modality: str,
                 each_folder: bool = False) -> tuple[list[VolumeSource], set[Path], list[dict]]:
    """The volumes under `root`; every file they (and their masks) take, which are not raster
    images; and a skipped entry for each volume left out by `modality`. DICOM files are found by
    their content, NIfTI files by their ending; a class folder labels its volumes as it labels
    files (`class_folders.find_class_files`)."""
    folders = parse_class_map(class_map)
    nifti, dicom, masks = _volume_files(root, mask_suffix)
    claimed = _files_of(nifti, dicom, masks)
    sources = [VolumeSource(path, "nifti", case_of(path.relative_to(root), nifti_stem(path), modality))
               for path in nifti]
    for folder, files in dicom.items():
        sources += [VolumeSource(folder if len(series) == len(files) else folder / uid, "dicom",
                                 f"patient {patient}" if patient else str(folder.relative_to(root)), series)
                    for uid, (series, patient) in _series(files).items()]
    kept, skipped = [], []
    for source in sources:
        name = nifti_stem(source.path) if source.kind == "nifti" else source.path.name
        source.folder_label = next(filter(None, (class_label(part, folders, each_folder) for part in
                                                 reversed(source.path.relative_to(root).parent.parts))), "")
        where = source.path.parent if source.kind == "nifti" else source.path
        for candidate in (folder_key(name), case_name(name, modality)):
            for folder in (where, where.parent):
                source.mask = source.mask or masks.get((folder, candidate))
        if modality and SEPARATOR.split(folder_key(name))[-1] != folder_key(modality):
            skipped.append({"path": str(source.path.relative_to(root)), "label": source.folder_label,
                            "reason": f"not the volume_modality asked for ({modality!r})"})
        else:
            kept.append(source)
    paired = {s.mask for s in sources}
    skipped += [{"path": str(mask.relative_to(root)), "label": "", "reason": "a tumour mask (mask_suffix) with "
                 "no volume of its case beside it"} for mask in masks.values() if mask not in paired]
    return kept, claimed, skipped


def _volume_files(root: Path, mask_suffix: str) -> tuple[list[Path], dict[Path, list[Path]], dict[tuple, Path]]:
    """The NIfTI volumes, the DICOM files by folder, and the masks by (folder, case) under `root`:
    no header is read."""
    nifti, dicom, masks = [], {}, {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if not path.is_file():  # a FIFO would hang its reader; find_class_files lists it with its reason
                continue
            if is_nifti(path):
                if folder_key(nifti_stem(path)).endswith(folder_key(mask_suffix)):
                    masks[(path.parent, folder_key(nifti_stem(path)[:-len(mask_suffix)]))] = path
                else:
                    nifti.append(path)
            elif is_dicom(path):
                dicom.setdefault(path.parent, []).append(path)
    return nifti, dicom, masks


def _files_of(nifti: list[Path], dicom: dict[Path, list[Path]], masks: dict[tuple, Path]) -> set[Path]:
    return set(nifti) | set(masks.values()) | {f for files in dicom.values() for f in files}


def volume_files(root: Path, mask_suffix: str) -> set[Path]:
    """Every file under `root` that is part of a volume or a mask, so not an image file (no header read)."""
    return _files_of(*_volume_files(root, mask_suffix))


def case_name(name: str, modality: str = "") -> str:
    """A scan's case from its name: without a trailing sequence name (BraTS: case_flair, case-t1n ->
    case; `volume_modality` counts as one); "" if the name is only that (t1.nii.gz)."""
    parts = re.split(f"({SEPARATOR.pattern})", folder_key(name))
    sequences = SEQUENCES | {folder_key(modality)} - {""}
    return "".join(parts[:-2]) if parts[-1] in sequences else "".join(parts)


def case_of(relative: Path, name: str, modality: str) -> str:
    """The case of a NIfTI file: its folders (less any named for a sequence: t1/sub01 and t2/sub01
    are one case) and its name's case."""
    folders = [part for part in relative.parent.parts if folder_key(part) not in SEQUENCES]
    return "/".join(folders + [case] if (case := case_name(name, modality)) else folders) or "."


def _series(files: list[Path]) -> dict[str, tuple[list[Path], str]]:
    """A folder's DICOM files by series (SeriesInstanceUID), each with its patient's ID (headers only):
    a patient's series stay on one side of the split."""
    pydicom = reader("pydicom")
    series: dict[str, tuple[list[Path], str]] = {}
    for path in files:
        try:
            header = pydicom.dcmread(str(path), stop_before_pixels=True)
            uid, patient = str(header.get("SeriesInstanceUID", "")), str(header.get("PatientID", ""))
        except Exception:  # noqa: BLE001 - read again, and its reason recorded, with its series
            uid, patient = "", ""
        series.setdefault(uid, ([], patient))[0].append(path)
    return series


def describe_volumes(root: Path, cfg: GANConfig) -> dict[str, int]:
    """How many volumes a raw folder holds, by kind and by what labels them (no voxels read); the
    counts that are not 0."""
    sources, _, left_out = find_volumes(root, cfg.class_map, cfg.mask_suffix, cfg.volume_modality)
    counts = {"NIfTI files": sum(s.kind == "nifti" for s in sources),
            "DICOM series": sum(s.kind == "dicom" for s in sources),
            "with a tumour mask": sum(s.mask is not None for s in sources),
            "labelled by their class folder": sum(s.mask is None and bool(s.folder_label) for s in sources),
            "left out by volume_modality": len(left_out)}
    return {kind: n for kind, n in counts.items() if n}
