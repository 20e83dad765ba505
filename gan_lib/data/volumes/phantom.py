"""Synthetic ("phantom") 3-D heads with their tumour masks, written as NIfTI files (BraTS's layout)
or DICOM series, so that the volume path runs, and is tested, without a network.

These volumes are SYNTHETIC: an ellipsoid head (scalp, skull, cerebrospinal fluid, grey and
white matter), two ventricles, and in the tumour cases a lobulated mass with a bright rim, a dark
core and oedema, under a bias field and Rician noise. They are not real MRI in any result.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ...base.files import write_json
from ..phantom import LOBE_DEPTH, OEDEMA_REACH, PHANTOM_NOTICE
from .readers import reader

VOLUME_LAYOUTS = ("nifti", "dicom")
# Stored orientations of the NIfTI cases in turn: canonical, the radiological convention, and a
# sagittal acquisition; reading turns every one back to the same axial slices.
STORED_ORIENTATIONS = (("R", "A", "S"), ("L", "P", "S"), ("A", "S", "L"))


@dataclass(frozen=True)
class PhantomVolumeSpec:
    """How many phantom volumes to write, and their size."""

    n_tumour: int = 20  # cases with a tumour (their slices away from it have none)
    n_clear: int = 10  # cases without
    seed: int = 0
    shape: tuple[int, int, int] = (96, 112, 40)  # voxels, right-left x front-back x feet-head
    spacing: tuple[float, float, float] = (2.0, 2.0, 4.0)  # millimetres


def _smooth_field(rng: np.random.Generator, shape: tuple[int, ...], cells: int = 6) -> np.ndarray:
    """Random values on a coarse grid, interpolated linearly to `shape`: zero mean, unit spread."""
    field = rng.standard_normal((cells,) * len(shape)).astype(np.float32)
    for axis, n in enumerate(shape):
        at = np.linspace(0, cells - 1, n)
        low = np.minimum(at.astype(int), cells - 2)
        weight = (at - low).reshape([-1 if a == axis else 1 for a in range(len(shape))]).astype(np.float32)
        field = np.take(field, low, axis=axis) * (1 - weight) + np.take(field, low + 1, axis=axis) * weight
    return (field - field.mean()) / (field.std() + 1e-6)


def render_volume(rng: np.random.Generator, shape: tuple[int, int, int], tumour: bool) -> tuple[np.ndarray, np.ndarray]:
    """One head as int16 voxels (x, y, z in RAS+) and its tumour mask (uint8, all zero without one)."""
    x, y, z = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in shape), indexing="ij")
    nx, ny, nz = shape
    ax = nx * rng.uniform(0.36, 0.44)
    ay, az = min(ax * rng.uniform(1.10, 1.25), ny * 0.46), nz * rng.uniform(0.40, 0.46)
    cx, cy, cz = (n / 2 + rng.uniform(-2, 2) for n in shape)
    r = np.sqrt(((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 + ((z - cz) / az) ** 2)
    img = np.where(r < 1.0, 0.75, 0.0).astype(np.float32)  # scalp and fat
    img[(r >= 0.90) & (r < 0.95)] = 0.10  # bone
    brain = r < 0.90
    img[brain] = 0.30  # cerebrospinal fluid
    img[r < 0.87] = 0.48  # grey matter
    img[r + 0.08 * _smooth_field(rng, shape) < 0.72] = 0.62  # white matter, its edge folded
    for sign in (-1.0, 1.0):  # ventricles beside the midline
        rv = np.sqrt(((x - cx - sign * ax * 0.13) / (ax * 0.07)) ** 2 + ((y - cy) / (ay * 0.25)) ** 2
                     + ((z - cz - az * 0.1) / (az * 0.2)) ** 2)
        img[rv < 1.0] = 0.18
    mask = np.zeros(shape, np.uint8)
    if tumour:
        rho, theta = rng.uniform(0.0, 0.5), rng.uniform(0, 2 * np.pi)
        tx, ty, tz = cx + rho * ax * np.cos(theta), cy + rho * ay * np.sin(theta), cz + rng.uniform(-0.3, 0.3) * az
        size = ax * rng.uniform(0.22, 0.36)
        phi = np.arctan2(y - ty, x - tx)
        lobes = 1.0 + sum(rng.uniform(0.0, LOBE_DEPTH) * np.cos(k * phi + rng.uniform(0, 2 * np.pi)) for k in (2, 3))
        rt = np.sqrt((x - tx) ** 2 + (y - ty) ** 2 + ((z - tz) * 0.8) ** 2) / (size * lobes)
        inside = r < 0.86
        img[inside & (rt < OEDEMA_REACH)] += 0.12
        img[inside & (rt < 1.0)] = 0.95
        img[inside & (rt < rng.uniform(0.4, 0.7))] = rng.uniform(0.25, 0.55)
        mask[inside & (rt < 1.0)] = 1
    img *= 1.0 + 0.1 * _smooth_field(rng, shape, cells=3)
    noise = rng.uniform(0.01, 0.03)
    real = img + noise * rng.standard_normal(shape).astype(np.float32)
    img = np.sqrt(real ** 2 + (noise * rng.standard_normal(shape).astype(np.float32)) ** 2)
    return np.round(img * 1000).astype(np.int16), mask


def canonical_affine(spec: PhantomVolumeSpec) -> np.ndarray:
    """Voxel -> millimetres (RAS) with the head's centre at the origin."""
    affine = np.diag([*spec.spacing, 1.0])
    affine[:3, 3] = -np.array(spec.spacing) * (np.array(spec.shape) - 1) / 2
    return affine


def write_nifti(path: Path, voxels: np.ndarray, affine: np.ndarray, axes: tuple[str, str, str] = ("R", "A", "S")):
    """A canonical volume saved as NIfTI with its array stored in the orientation `axes` names."""
    nibabel = reader("nibabel")
    image = nibabel.Nifti1Image(voxels, affine)
    orientations = nibabel.orientations
    turn = orientations.ornt_transform(orientations.axcodes2ornt(("R", "A", "S")), orientations.axcodes2ornt(axes))
    nibabel.save(image.as_reoriented(turn), str(path))


def write_dicom_series(folder: Path, voxels: np.ndarray, affine: np.ndarray, case: str, seed: int) -> None:
    """A canonical axial volume as a DICOM series of one file per slice, the usual axial layout (rows
    front to back, columns right to left), under names that do not follow slice order and instance
    numbers that run backwards: only the positions order it."""
    pydicom = reader("pydicom")
    uid = pydicom.uid
    generate_uid = uid.generate_uid
    folder.mkdir(parents=True, exist_ok=True)
    nx, ny, nz = voxels.shape
    sx, sy, sz = np.diag(affine)[:3]
    study, series = (generate_uid(entropy_srcs=[str(seed), case, kind]) for kind in ("study", "series"))
    names = np.random.default_rng([seed, nz]).permutation(nz)
    for k in range(nz):
        meta = pydicom.dataset.FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.TransferSyntaxUID = uid.MRImageStorage, uid.ExplicitVRLittleEndian
        meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[str(seed), case, str(k)])
        ds = pydicom.dataset.Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = uid.MRImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID = "MR", case, study, series
        ds.InstanceNumber = nz - k
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]  # rows towards the patient's left, columns towards the back
        ds.ImagePositionPatient = [round(float(v), 4) for v in (-(affine[0, 3] + (nx - 1) * sx),
                                                                -(affine[1, 3] + (ny - 1) * sy), affine[2, 3] + k * sz)]
        ds.PixelSpacing, ds.SliceThickness = [float(sy), float(sx)], float(sz)
        ds.set_pixel_data(np.ascontiguousarray(voxels[::-1, ::-1, k].T), "MONOCHROME2", 16)
        ds.save_as(folder / f"IM{names[k]:04d}", enforce_file_format=True)


def write_phantom_volumes(out_dir: str | Path, layout: str, spec: PhantomVolumeSpec = PhantomVolumeSpec()) -> dict:
    """Write the cases in `layout`: nifti puts `case_NNN/case_NNN_t1.nii.gz` and `case_NNN_seg.nii.gz`
    in a folder per case (BraTS's naming); dicom puts a series folder `case_NNN/` and its mask
    `case_NNN_seg.nii.gz` beside it. Each case draws from its own child seed."""
    if layout not in VOLUME_LAYOUTS:
        raise ValueError(f"layout={layout!r}; choose one of {VOLUME_LAYOUTS}")
    out_dir = Path(out_dir)
    affine = canonical_affine(spec)
    children = np.random.SeedSequence([spec.seed, 3]).spawn(spec.n_tumour + spec.n_clear)
    for i, child in enumerate(children):
        voxels, mask = render_volume(np.random.default_rng(child), spec.shape, tumour=i < spec.n_tumour)
        case = f"case_{i:03d}"
        folder = out_dir / case
        if layout == "nifti":
            folder.mkdir(parents=True, exist_ok=True)
            axes = STORED_ORIENTATIONS[i % len(STORED_ORIENTATIONS)]
            write_nifti(folder / f"{case}_t1.nii.gz", voxels, affine, axes)
            write_nifti(folder / f"{case}_seg.nii.gz", mask, affine, axes)
        else:
            write_dicom_series(folder, voxels, affine, case, spec.seed)
            write_nifti(out_dir / f"{case}_seg.nii.gz", mask, affine)
    info = {"notice": PHANTOM_NOTICE, "synthetic": True, "layout": layout, "spec": asdict(spec),
            "cases": {"tumour": spec.n_tumour, "clear": spec.n_clear}}
    write_json(out_dir / "phantom.json", info)
    return info
