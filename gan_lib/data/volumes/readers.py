"""3-D scans read into one orientation: a NIfTI file (nibabel) or a DICOM series (pydicom) becomes
its voxels in nibabel's closest canonical orientation (RAS+), whose third axis runs from the feet
to the top of the head, so that its slices along that axis are axial whatever the file stored.
A file or series that cannot give such a volume raises ValueError with the reason, which the
dataset's manifest records. nibabel and pydicom are imported only when a volume is read.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NIFTI_ENDINGS = (".nii", ".nii.gz")
DICOM_MAGIC = b"DICM"  # at byte 128 of every DICOM file (Part 10)
# A gap between neighbouring slices this much longer than the series' usual one is a missing slice.
GAP_TOLERANCE = 0.5
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])  # DICOM's patient axes point left and back, NIfTI's right and front


@dataclass
class Volume:
    voxels: np.ndarray  # float32 (x, y, z) in RAS+: z runs from the feet to the top of the head
    affine: np.ndarray  # voxel index -> millimetres (RAS) of `voxels`
    note: str = ""  # something the reader did that the user should know about


def reader(name: str):
    """nibabel or pydicom, or a ValueError that says how to install it (only volumes need them)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise ValueError(f"{name} is not installed, so this volume cannot be read: pip install {name}") from None


def is_nifti(path: Path) -> bool:
    return path.name.lower().endswith(NIFTI_ENDINGS)


def nifti_stem(path: Path) -> str:
    """The name without .nii or .nii.gz."""
    name = path.name
    return name[:-len(".nii.gz")] if name.lower().endswith(".nii.gz") else name[:-len(".nii")]


def is_dicom(path: Path) -> bool:
    """A DICOM file by its content (names rarely say: many series are files without an ending)."""
    try:
        with open(path, "rb") as f:
            return f.read(132)[128:] == DICOM_MAGIC
    except OSError:
        return False


def canonical(voxels: np.ndarray, affine: np.ndarray, note: str = "") -> Volume:
    """The volume turned to its closest canonical orientation (RAS+), as nibabel does."""
    orientations = reader("nibabel").orientations
    if not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) < 1e-9:
        raise ValueError("orientation unknown: its voxel-to-patient matrix is singular or not finite, so which way "
                         "is axial cannot be told")
    turn = orientations.io_orientation(affine)
    turned = orientations.apply_orientation(voxels, turn)
    return Volume(np.ascontiguousarray(turned, np.float32),
                  affine @ orientations.inv_ornt_aff(turn, voxels.shape), note)


def read_nifti(path: Path) -> Volume:
    """A 3-D NIfTI file (a 4-D one with a single volume too) in canonical orientation."""
    nibabel = reader("nibabel")
    try:
        image = nibabel.load(str(path))
    except Exception as err:  # noqa: BLE001 - nibabel raises many kinds for a damaged header
        raise ValueError(f"not a readable NIfTI file ({type(err).__name__}: {str(err)[:160]})") from None
    shape = image.shape
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise ValueError(f"{len(shape)}-D NIfTI of shape {shape}: one 3-D volume per file is read; split a time "
                         "series or a file of several sequences into 3-D files first (e.g. fslsplit)")
    try:
        voxels = np.asarray(image.dataobj, dtype=np.float32).reshape(shape)
    except Exception as err:  # noqa: BLE001 - a cut-short .nii.gz fails in gzip, zlib or nibabel
        raise ValueError(f"truncated or corrupt NIfTI (its voxels cannot be read: {type(err).__name__}: "
                         f"{str(err)[:160]})") from None
    header = image.header
    note = ""
    if hasattr(header, "get_qform") and not header.get_qform(coded=True)[1] and not header.get_sform(coded=True)[1]:
        note = ("no orientation in its header (qform and sform codes 0): nibabel's default for such files taken "
                "(Analyze's, its first axis towards the patient's left), which may mirror it")
    return canonical(voxels, image.affine, note)


def read_dicom_series(files: list[Path]) -> Volume:
    """One DICOM series, its slices ordered by their position along the slice normal (not by file
    name or instance number), in canonical orientation."""
    pydicom = reader("pydicom")
    slices = []
    for path in files:
        try:
            slices.append(pydicom.dcmread(str(path)))
        except Exception as err:  # noqa: BLE001 - one damaged file makes the series unusable
            raise ValueError(f"{path.name} is not a readable DICOM file ({type(err).__name__}: {str(err)[:120]})") \
                from None
    sizes = sorted({(int(s.Rows), int(s.Columns)) for s in slices})
    if len(sizes) > 1:
        raise ValueError(f"mixed slice sizes {sizes} in one series: its slices do not form a volume")
    try:
        directions = np.array([[float(v) for v in s.ImageOrientationPatient] for s in slices])
        positions = np.array([[float(v) for v in s.ImagePositionPatient] for s in slices])
        spacing = [float(v) for v in slices[0].PixelSpacing]
    except AttributeError as err:
        raise ValueError(f"no {str(err).split()[-1]} in its files: the slices cannot be placed in space") from None
    if np.abs(directions - directions[0]).max() > 1e-4:
        raise ValueError("slices of different orientations in one series")
    along_row, along_column = directions[0, :3], directions[0, 3:]
    normal = np.cross(along_row, along_column)
    depth = positions @ normal
    order = np.argsort(depth, kind="stable")
    step = _slice_step(depth[order], slices[0])
    pixels = []
    for k in order:
        try:
            pixels.append(slices[k].pixel_array.astype(np.float32))
        except Exception as err:  # noqa: BLE001 - pydicom says which plugin would decode it
            syntax = slices[k].file_meta.TransferSyntaxUID
            raise ValueError(f"pixel data stored as {syntax.name} ({syntax}), which the installed readers cannot "
                             f"decode: {' '.join(str(err).split())[:300]}") from None
        if pixels[-1].ndim != 2:
            raise ValueError(f"{pixels[-1].shape} pixels in one file: one grey slice per file is read (enhanced "
                             "multi-frame and colour DICOM are not)")
        slope, intercept = (float(slices[k].get(name, default) or default)
                            for name, default in (("RescaleSlope", 1), ("RescaleIntercept", 0)))
        pixels[-1] = pixels[-1] * slope + intercept
    voxels = np.stack([p.T for p in pixels], axis=-1)  # (column, row, slice)
    affine = np.eye(4)
    affine[:3, 0] = along_row * spacing[1]  # PixelSpacing is (between rows, between columns)
    affine[:3, 1] = along_column * spacing[0]
    affine[:3, 2] = normal * step
    affine[:3, 3] = positions[order[0]]
    return canonical(voxels, LPS_TO_RAS @ affine)


def _slice_step(depth: np.ndarray, first) -> float:
    """The distance between neighbouring slices; a series with a slice missing or two slices in
    one place is refused (its volume would be silently squeezed)."""
    if len(depth) < 2:
        return float(first.get("SliceThickness", 1.0) or 1.0)
    gaps = np.diff(depth)
    step = float(np.median(gaps))
    if gaps.min() < 0.01 * step or step <= 0:
        raise ValueError(f"two slices at one position ({gaps.min():.3g} mm apart): a series stored twice, or two "
                         "series in one folder with the same series UID")
    worst = int(np.argmax(np.abs(gaps - step)))
    if abs(gaps[worst] - step) > GAP_TOLERANCE * step:
        raise ValueError(f"a slice is missing: {gaps[worst]:.3g} mm between slices {worst} and {worst + 1} (in "
                         f"position order), where the others are {step:.3g} mm apart")
    return step
