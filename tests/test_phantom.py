"""The built-in synthetic dataset: deterministic, varied like the real files, tumours visible."""

from __future__ import annotations

import hashlib

import cv2
import numpy as np

from gan_lib.data.phantom import PhantomSpec, render_slice, write_phantom_dataset


def digest(folder) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    spec = PhantomSpec(n_yes=6, n_no=4, seed=3)
    write_phantom_dataset(tmp_path / "a", spec)
    write_phantom_dataset(tmp_path / "b", spec)
    write_phantom_dataset(tmp_path / "c", PhantomSpec(n_yes=6, n_no=4, seed=4))
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert digest(tmp_path / "a") != digest(tmp_path / "c")


def test_image_i_does_not_depend_on_the_count(tmp_path):
    write_phantom_dataset(tmp_path / "small", PhantomSpec(n_yes=3, n_no=1))
    write_phantom_dataset(tmp_path / "large", PhantomSpec(n_yes=8, n_no=2))
    for name in ("phantom_yes_0002", "phantom_no_0000"):
        a = next((tmp_path / "small").rglob(name + ".*")).read_bytes()
        b = next((tmp_path / "large").rglob(name + ".*")).read_bytes()
        assert a == b


def test_files_vary_like_the_real_set(tmp_path):
    info = write_phantom_dataset(tmp_path, PhantomSpec(n_yes=40, n_no=20, seed=1))
    assert info["synthetic"] and "SYNTHETIC" in info["notice"]
    files = sorted(tmp_path.rglob("phantom_*"))
    assert len(files) == 60 and {f.suffix for f in files} == {".png", ".jpg"}
    shapes = {cv2.imread(str(f), cv2.IMREAD_UNCHANGED).shape for f in files}
    assert len({s[:2] for s in shapes}) > 30, "sizes vary"
    assert any(s[0] != s[1] for s in shapes), "not all square"
    assert {len(s) for s in shapes} == {2, 3}, "grey and 3-channel files"
    assert info["files"]["duplicates"] > 0


def test_tumour_adds_a_bright_region_inside_the_brain():
    brightest = []
    for tumour in (False, True):
        shares = []
        for seed in range(8):
            img = render_slice(np.random.default_rng(seed), 256, 256, tumour=tumour)
            shares.append((img > 215).mean())
        brightest.append(np.mean(shares))
    assert brightest[1] > 2 * brightest[0]
