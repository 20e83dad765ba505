"""3-D scans in, labelled axial slices out: NIfTI files and DICOM series written here with nibabel
and pydicom (and pydicom's own example files), in several stored orientations, with masks beside
them, and each kind of damaged volume."""

from __future__ import annotations

import os
import shutil
from collections import Counter
from pathlib import Path

import nibabel
import numpy as np
import pytest
from conftest import encode, head_image, write
from pydicom import dcmread
from pydicom.data import get_testdata_file
from test_data import prepare, reasons

from gan_lib.config import GANConfig
from gan_lib.data.class_folders import DataError
from gan_lib.data.prepare import prepare_dataset
from gan_lib.data.sources import fetch_raw
from gan_lib.data.volumes.finding import case_of, find_volumes
from gan_lib.data.volumes.phantom import (PhantomVolumeSpec, canonical_affine, render_volume, write_dicom_series,
                                          write_nifti)
from gan_lib.data.volumes.readers import read_dicom_series, read_nifti
from gan_lib.data.volumes.slices import axial_image

SMALL = PhantomVolumeSpec(shape=(48, 56, 24), spacing=(3.0, 4.0, 6.0))  # unequal: rows and columns cannot swap


def head(seed: int, tumour: bool = True):
    return render_volume(np.random.default_rng(seed), SMALL.shape, tumour)


def brats_case(root, name: str, seed: int, tumour: bool = True, axes=("R", "A", "S")):
    """A BraTS-style case folder: two sequences of one head (the second a little brighter) and its mask."""
    voxels, mask = head(seed, tumour)
    folder = root / name
    folder.mkdir(parents=True)
    write_nifti(folder / f"{name}_flair.nii.gz", voxels, canonical_affine(SMALL), axes)
    write_nifti(folder / f"{name}_t1.nii.gz", (voxels * 1.1).astype(np.int16), canonical_affine(SMALL), axes)
    write_nifti(folder / f"{name}_seg.nii.gz", mask, canonical_affine(SMALL), axes)
    return voxels, mask


def test_nifti_cases_with_masks_give_slices_labelled_by_tumour_area_and_split_by_case(tmp_path):
    root = tmp_path / "brats"
    for i in range(5):
        brats_case(root, f"BraTS_{i:03d}", seed=i, tumour=i < 4, axes=[("R", "A", "S"), ("L", "P", "S")][i % 2])
    _, result = prepare(root, classes="both", volume_modality="flair", slice_share=1.0, tumour_min_pixels=20,
                        holdout=0.4)
    images = result.manifest.images
    assert {e["source_path"].rsplit("_", 1)[1] for e in images} == {"flair.nii.gz"}
    assert Counter(r for r in reasons(result).values() if "volume_modality" in r) == \
        {"not the volume_modality asked for ('flair')": 5}
    for entry in images:  # the mask read by nibabel's own canonical turn, counted here
        mask = nibabel.as_closest_canonical(nibabel.load(str(root / entry["mask"]))).get_fdata()
        area = int((mask[:, :, entry["slice"]] > 0).sum())
        assert entry["tumour_pixels"] == area and entry["label"] == ("yes" if area >= 20 else "no"), entry
    assert all(0 < int(r.split("(")[1].split()[0]) < 20 for p, r in reasons(result).items() if "little tumour" in r)
    sides = {}
    for entry in images:
        sides.setdefault(entry["case"], set()).add(entry["split"])
    assert len(sides) == 5 and all(len(s) == 1 for s in sides.values()), sides
    assert Counter(next(iter(s)) for s in sides.values()) == {"train": 3, "test": 2}
    assert result.manifest.dataset.volumes == 5 and "split by case" in result.manifest.dataset.volume_rule
    assert set(Counter(e["label"] for e in images)) == {"yes", "no"}


def test_every_stored_orientation_and_a_shuffled_dicom_series_give_the_same_axial_slices(tmp_path):
    voxels, _ = head(7, tumour=True)
    x, y, z = 40, 50, 12  # a marker at the patient's right, at the front, mid-height
    voxels[x - 2:x + 2, y - 2:y + 2, z] = 3000
    affine = canonical_affine(SMALL)
    read = []
    for axes in (("R", "A", "S"), ("L", "P", "S"), ("A", "S", "L"), ("P", "I", "R")):
        path = tmp_path / f"{''.join(axes)}.nii.gz"
        write_nifti(path, voxels, affine, axes)
        assert nibabel.aff2axcodes(nibabel.load(str(path)).affine) == axes
        read.append(read_nifti(path))
    write_dicom_series(tmp_path / "series", voxels, affine, "case", seed=0)
    files = sorted((tmp_path / "series").iterdir())
    numbers = [int(dcmread(str(f), stop_before_pixels=True).InstanceNumber) for f in files]
    assert numbers != sorted(numbers) and numbers != sorted(numbers, reverse=True), "names should not follow the slices"
    read.append(read_dicom_series(files))
    for volume in read:
        np.testing.assert_array_equal(volume.voxels, voxels)
        np.testing.assert_allclose(volume.affine, affine, atol=1e-4)
    picture = axial_image(read[-1].voxels, z)  # anterior at the top, the patient's right on the left
    row, column = np.unravel_index(np.argmax(picture), picture.shape)
    assert row < picture.shape[0] / 2 and column < picture.shape[1] / 2, (row, column)


def test_a_volume_s_slices_are_on_the_same_side_whichever_classes_are_kept(tmp_path):
    root = tmp_path / "brats"
    for i in range(6):
        brats_case(root, f"case{i}", seed=10 + i)
    sides = {}
    for classes in ("yes", "both"):
        _, result = prepare(root, classes=classes, slice_share=1.0, tumour_min_pixels=20)
        sides[classes] = {(e["source_path"], e["slice"]): e["split"] for e in result.manifest.images}
    assert sides["yes"] and all(sides["both"][key] == side for key, side in sides["yes"].items())


def dicom_series(folder, seed: int, **kw):
    voxels, mask = head(seed, **kw)
    write_dicom_series(folder, voxels, canonical_affine(SMALL), folder.name, seed)
    return voxels, mask


def test_every_damaged_or_odd_volume_gets_its_reason_and_good_ones_beside_them_are_used(tmp_path):
    root = tmp_path / "mixed"
    voxels, mask = brats_case(root, "good one", seed=1)
    # non-ASCII and spaces in the names, and a DICOM series with its mask beside it
    dicom_series(root / "série 2", seed=2)
    write_nifti(root / "série 2_seg.nii.gz", head(2)[1], canonical_affine(SMALL))
    # a volume labelled by its class folder, and pydicom's own one-slice MR example there too
    (root / "no" / "mr_small").mkdir(parents=True)
    write_nifti(root / "no" / "clear.nii", head(3, tumour=False)[0], canonical_affine(SMALL))
    shutil.copy(get_testdata_file("MR_small.dcm"), root / "no" / "mr_small" / "MR_small.dcm")
    write(root / "yes" / "a slice.png", encode(head_image(seed=60)))  # a 2-D file beside the volumes
    os.mkfifo(root / "no" / "pipe.nii.gz")  # opening it would hang: never opened
    affine = canonical_affine(SMALL)
    bad = root / "bad"
    bad.mkdir()
    whole = (root / "good one" / "good one_flair.nii.gz").read_bytes()
    (bad / "cut_flair.nii.gz").write_bytes(whole[:len(whole) // 2])
    nibabel.save(nibabel.Nifti1Image(np.stack([voxels, voxels], -1), affine), str(bad / "fmri.nii.gz"))
    flat = nibabel.Nifti1Image(voxels, None)  # its voxel-to-patient matrix squashes the third axis
    flat.header.set_sform(np.diag([2.0, 2.0, 0.0, 1.0]), code=1)
    nibabel.save(flat, str(bad / "flat.nii.gz"))
    write_nifti(bad / "unlabelled.nii.gz", head(4)[0], affine)
    write_nifti(bad / "mismatch.nii.gz", head(5)[0], affine)
    write_nifti(bad / "mismatch_seg.nii.gz", mask[:, :, :10], affine)
    (root / "z copies").mkdir()
    shutil.copy(root / "good one" / "good one_flair.nii.gz", root / "z copies" / "again.nii.gz")
    write_nifti(bad / "lonely_seg.nii.gz", mask, affine)
    (bad / "broken mask").mkdir()
    write_nifti(bad / "broken mask" / "scan.nii.gz", head(8)[0], affine)
    (bad / "broken mask" / "scan_seg.nii.gz").write_bytes(b"not a NIfTI file")
    dicom_series(bad / "gap", seed=6)
    sorted_by_position = sorted((bad / "gap").iterdir(), key=lambda f: float(dcmread(str(f)).ImagePositionPatient[2]))
    sorted_by_position[10].unlink()
    dicom_series(bad / "sizes", seed=7)
    odd = next((bad / "sizes").iterdir())
    ds = dcmread(str(odd))
    ds.set_pixel_data(np.zeros((30, 30), np.int16), "MONOCHROME2", 16)
    ds.save_as(odd)
    (bad / "jpegls").mkdir()
    shutil.copy(get_testdata_file("MR_small_jpeg_ls_lossless.dcm"), bad / "jpegls" / "IM0001")
    (bad / "screenshot").mkdir()  # pydicom's colour secondary capture: no position in space
    shutil.copy(get_testdata_file("SC_rgb_jpeg.dcm"), bad / "screenshot" / "SC0001")
    (bad / "frames").mkdir()  # an enhanced file: several frames in one
    ds.set_pixel_data(np.zeros((3, 56, 48), np.int16), "MONOCHROME2", 16)
    ds.save_as(bad / "frames" / "IM0001")

    _, result = prepare(root, classes="both", slice_share=1.0, tumour_min_pixels=20, holdout=0.3)
    _, clear_only = prepare(root, classes="no", slice_share=1.0, tumour_min_pixels=20, holdout=0.3)
    assert {p for p in reasons(result) if p.startswith("bad/")} <= set(reasons(clear_only)), \
        "a volume that could not be read is listed whichever classes are kept"
    why = reasons(result)
    expected = {"bad/cut_flair.nii.gz": "truncated or corrupt NIfTI", "bad/fmri.nii.gz": "4-D NIfTI",
                "bad/flat.nii.gz": "orientation unknown", "bad/unlabelled.nii.gz": "no label",
                "bad/mismatch.nii.gz": "does not lie on it",
                "z copies/again.nii.gz": "the same voxels as good one/good one_flair.nii.gz",
                "bad/lonely_seg.nii.gz": "a tumour mask (mask_suffix) with no volume of its case beside it",
                "bad/broken mask/scan.nii.gz": "its mask scan_seg.nii.gz: not a readable NIfTI file",
                "bad/gap": "a slice is missing", "bad/sizes": "mixed slice sizes",
                "bad/screenshot": "no 'ImageOrientationPatient' in its files: the slices cannot be placed in space",
                "bad/frames": "(3, 56, 48) pixels in one file: one grey slice per file is read",
                "no/pipe.nii.gz": "not a regular file (a FIFO)",
                "bad/jpegls": "JPEG-LS Lossless Image Compression (1.2.840.10008.1.2.4.80), which the installed"}
    for path, start in expected.items():
        assert start in why.get(path, ""), (path, why.get(path))
    assert "pylibjpeg" in why["bad/jpegls"] and "gdcm" in why["bad/jpegls"]
    used = Counter((e["source_path"], e["label"]) for e in result.manifest.images)
    assert {path for path, _ in used} == {"good one/good one_flair.nii.gz", "good one/good one_t1.nii.gz", "série 2",
                                          "no/clear.nii", "no/mr_small", "yes/a slice.png"}
    assert used[("no/mr_small", "no")] == 1 and used[("no/clear.nii", "no")] > 0 and used[("no/clear.nii", "yes")] == 0
    assert used[("série 2", "yes")] > 0 and used[("série 2", "no")] > 0


def test_the_phantom_writes_nifti_and_dicom_volumes_that_make_the_same_dataset(tmp_path):
    made = {}
    for layout in ("nifti", "dicom"):
        cfg = GANConfig.from_overrides(data_source="phantom", phantom_layout=layout, data_root=str(tmp_path),
                                       classes="both", image_size=32)
        made[layout] = prepare_dataset(cfg, fetch_raw(cfg))
        assert (tmp_path / "raw" / f"phantom-{layout}" / "phantom.json").exists()
    nifti, dicom = made["nifti"], made["dicom"]
    np.testing.assert_array_equal(nifti.images, dicom.images)
    np.testing.assert_array_equal(nifti.split, dicom.split)
    assert nifti.manifest.dataset.synthetic and nifti.manifest.dataset.volumes == 30
    assert nifti.manifest.dataset.per_class["yes"] > 100 and nifti.manifest.dataset.per_class["no"] > 100


@pytest.mark.parametrize("setting, value", [("phantom_layout", "nii"), ("slice_share", 0.0), ("slice_share", 1.5),
                                            ("tumour_min_pixels", 0), ("mask_suffix", "")])
def test_a_volume_setting_out_of_range_is_refused_before_any_work(setting, value):
    with pytest.raises(ValueError, match=setting):
        GANConfig.from_overrides(**{setting: value})


def test_classes_all_takes_class_folders_and_refuses_slices_labelled_by_masks(tmp_path):
    root = tmp_path / "layout"
    brats_case(root / "tumour", "case0", seed=20)
    (root / "clear").mkdir()
    write_nifti(root / "clear" / "plain.nii.gz", head(21, tumour=False)[0], canonical_affine(SMALL))
    with pytest.raises(DataError, match="use classes='both' for volumes with masks"):
        prepare(root, classes="all", class_map="yes=tumour;no=clear", slice_share=1.0)
    shutil.rmtree(root / "tumour" / "case0")
    write_nifti(root / "tumour" / "lesion.nii.gz", head(22)[0], canonical_affine(SMALL))
    _, result = prepare(root, classes="all", class_map="yes=tumour;no=clear", holdout=0.0)
    assert result.manifest.dataset.class_names == ["clear", "tumour"]
    assert {(e["source_path"], e["label"]) for e in result.manifest.images} == {("clear/plain.nii.gz", "clear"),
                                                                                 ("tumour/lesion.nii.gz", "tumour")}


@pytest.mark.parametrize("path, case", [
    ("BraTS20_Training_001/BraTS20_Training_001_flair", "BraTS20_Training_001/brats20_training_001"),
    ("BraTS-GLI-00000-000/BraTS-GLI-00000-000-t1n", "BraTS-GLI-00000-000/brats-gli-00000-000"),
    ("yes/scan_01", "yes/scan_01"), ("yes/scan_02", "yes/scan_02"),  # numbered scans are cases of their own
    ("t1/sub01", "sub01"), ("T2/sub01", "sub01"),  # a folder per sequence: one case
    ("patient01/T1", "patient01"), ("patient01/flair", "patient01")])
def test_a_scan_s_case_is_its_name_without_its_sequence_and_its_folders_without_sequence_folders(path, case):
    assert case_of(Path(path + ".nii.gz"), path.rsplit("/", 1)[1], "") == case


def test_hyphenated_brats_2023_names_pair_with_their_mask(tmp_path):
    root = tmp_path / "brats23"
    voxels, mask = head(30)
    name = "BraTS-GLI-00001-000"
    (root / name).mkdir(parents=True)
    for suffix, data in (("t1n", voxels), ("t2f", voxels + 1), ("seg", mask)):
        write_nifti(root / name / f"{name}-{suffix}.nii.gz", data, canonical_affine(SMALL))
    sources, _, skipped = find_volumes(root, "", "-seg", "t2f")
    assert [(s.path.name, s.mask.name, s.case) for s in sources] == [
        (f"{name}-t2f.nii.gz", f"{name}-seg.nii.gz", f"{name}/{name.lower()}")]
    assert [s["reason"] for s in skipped] == ["not the volume_modality asked for ('t2f')"]


def test_volumes_labelled_by_class_folders_hold_out_cases_of_each_class(tmp_path):
    root = tmp_path / "folders"
    for i in range(9):
        label = "yes" if i < 3 else "no"
        (root / label).mkdir(parents=True, exist_ok=True)
        write_nifti(root / label / f"scan{i}.nii.gz", head(40 + i, tumour=label == "yes")[0], canonical_affine(SMALL))
    _, result = prepare(root, classes="both", holdout=0.2)
    held_out = Counter(e["label"] for e in result.manifest.images if e["split"] == "test")
    cases = {(e["case"], e["label"], e["split"]) for e in result.manifest.images}
    assert held_out["yes"] > 0 and held_out["no"] > 0
    assert len(cases) == 9 and Counter(split for _, _, split in cases) == {"train": 7, "test": 2}  # 1 of 3, 1 of 6
