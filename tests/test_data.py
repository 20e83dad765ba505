"""The data layer: finding class folders, dedupe, decoding every kind of file, cropping, splitting."""

from __future__ import annotations

import hashlib
import os

import cv2
import numpy as np
import pytest
from conftest import encode, head_image, palette_png, write

from gan_lib.config import GANConfig
from gan_lib.data.class_folders import DataError
from gan_lib.data.prepare import prepare_dataset
from gan_lib.data.scans import crop_pad_resize, decode_image, head_box
from gan_lib.data.sources import RawSource
from gan_lib.data.storage import load_processed, processed_path, save_processed


def prepare(root, **overrides):
    cfg = GANConfig.from_overrides(data_source="local", data_dir=str(root), data_root=str(root.parent / "out"),
                                   image_size=64, **overrides)
    return cfg, prepare_dataset(cfg, RawSource(root, "local", False, "test folder"))


def reasons(result) -> dict[str, str]:
    return {s["path"]: s["reason"] for s in result.manifest.skipped}


def test_duplicates_are_counted_once_and_reported(raw_root):
    _, result = prepare(raw_root, holdout=0.0)
    assert len(result.images) == 6
    assert reasons(result) == {os.path.join("yes", "Y0.png"): f"duplicate of {os.path.join('yes', 'Y0 copy.png')}"} \
        or reasons(result) == {os.path.join("yes", "Y0 copy.png"): f"duplicate of {os.path.join('yes', 'Y0.png')}"}


def test_kaggle_double_layout_counts_each_image_once(raw_root):
    for label in ("yes", "no"):
        for f in (raw_root / label).iterdir():
            write(raw_root / "brain_tumor_dataset" / label / f.name, f.read_bytes())
    _, result = prepare(raw_root, classes="both", holdout=0.0)
    assert result.manifest.dataset.per_class == {"yes": 6, "no": 4}
    assert result.manifest.dataset.files_found == 22
    kept = {e["source_path"] for e in result.manifest.images}
    assert not any(p.startswith("brain_tumor_dataset") for p in kept), "the top-level copy should be kept"
    assert len(result.manifest.skipped) == 12


def test_every_found_file_is_either_used_or_skipped_with_a_reason(raw_root):
    write(raw_root / "yes" / "notes.txt", b"radiologist notes, not an image")
    write(raw_root / "yes" / "empty.jpg", b"")
    full = encode(head_image(seed=50), ".jpg")
    write(raw_root / "yes" / "truncated.jpg", full[: len(full) // 2])
    png = encode(head_image(seed=51))
    write(raw_root / "yes" / "truncated.png", png[: len(png) // 2])
    write(raw_root / "yes" / "corrupt.jpg", b"\xff\xd8\xff\xe0" + b"\x00garbage" * 50 + b"\xff\xd9")
    write(raw_root / "yes" / "blank.png", encode(np.zeros((200, 200), np.uint8)))
    write(raw_root / "yes" / "tiny.png", encode(head_image(20, 20, (10, 10), (6, 6))))
    os.symlink(raw_root / "missing.png", raw_root / "yes" / "dangling.png")
    _, result = prepare(raw_root, holdout=0.0)
    why = reasons(result)
    assert why["yes/notes.txt"].startswith("not an image")
    assert why["yes/empty.jpg"] == "empty file"
    assert why["yes/truncated.jpg"].startswith("truncated JPEG")
    assert why["yes/truncated.png"].startswith("truncated PNG")
    assert why["yes/corrupt.jpg"].startswith("jpeg data could not be decoded")
    assert why["yes/blank.png"].startswith("blank image")
    assert why["yes/tiny.png"].startswith("too small")
    assert why["yes/dangling.png"].startswith("unreadable")
    found = result.manifest.dataset.files_found
    assert found == len(result.manifest.images) + len(result.manifest.skipped) == 15


def test_sixteen_bit_and_palette_images_are_converted_with_a_note():
    img = head_image(seed=3)
    sixteen = decode_image(encode((img.astype(np.uint16) * 16)))  # a 12-bit scan stored in 16 bits
    assert sixteen.mode == "gray16" and "16-bit" in sixteen.note
    assert sixteen.gray.dtype == np.uint8 and sixteen.gray.max() == 255
    assert np.corrcoef(sixteen.gray.ravel(), img.ravel())[0, 1] > 0.999
    palette = decode_image(palette_png(img))
    assert palette.mode == "palette" and "palette" in palette.note
    np.testing.assert_array_equal(palette.gray, img)


@pytest.mark.parametrize("channels", ["gray", "rgb", "rgba"])
def test_colour_modes_decode_to_the_same_grey(channels):
    img = head_image(seed=4)
    stored = {"gray": img, "rgb": cv2.cvtColor(img, cv2.COLOR_GRAY2BGR),
              "rgba": cv2.cvtColor(img, cv2.COLOR_GRAY2BGRA)}[channels]
    decoded = decode_image(encode(stored))
    assert decoded.mode == channels
    np.testing.assert_array_equal(decoded.gray, img)


def test_crop_finds_an_off_centre_head_and_fills_the_square():
    img = head_image(400, 600, centre=(300, 120), radius=(70, 60))
    x, y, w, h = head_box(img)
    assert abs(x - 60) <= 3 and abs(y - 230) <= 3 and abs(w - 121) <= 4 and abs(h - 141) <= 4
    out = crop_pad_resize(img, (x, y, w, h), 64)
    assert out.shape == (64, 64)
    assert (out > 60).mean() > 0.5, "the head should fill most of the square (uncropped: 5 %)"
    assert (out[:, :3] < 60).all() or (out[:, -3:] < 60).all(), "padding is black"


def test_crop_ignores_burnt_in_text_away_from_the_head():
    img = head_image(300, 300, centre=(150, 150), radius=(80, 80))
    cv2.putText(img, "L 12", (5, 290), cv2.FONT_HERSHEY_SIMPLEX, 0.4, 255, 1)
    x, y, w, h = head_box(img)
    assert y + h < 240 and x > 60


def test_output_is_square_in_tanh_range_with_labels(raw_root):
    _, result = prepare(raw_root, classes="both", holdout=0.0)
    assert result.images.shape == (10, 64, 64, 1) and result.images.dtype == np.float32
    assert result.images.min() >= -1.0 and result.images.max() <= 1.0
    assert result.images.min() < -0.9 and result.images.max() > 0.5
    assert sorted(result.labels.tolist()) == [0] * 4 + [1] * 6


def test_seeded_subset_and_per_class_holdout(raw_root):
    _, a = prepare(raw_root, classes="both", n_images=5, seed=7, holdout=0.0)
    _, b = prepare(raw_root, classes="both", n_images=5, seed=7, holdout=0.0)
    _, c = prepare(raw_root, classes="both", n_images=5, seed=8, holdout=0.0)
    pick = lambda r: [e["sha256"] for e in r.manifest.images]  # noqa: E731
    assert len(pick(a)) == 5 and pick(a) == pick(b) and pick(a) != pick(c)
    _, split = prepare(raw_root, classes="both", holdout=0.5, seed=1)
    test_labels = split.labels[split.split == "test"].tolist()
    assert sorted(test_labels) == [0, 0, 1, 1, 1], "half of each class is held out"
    _, tumour_only = prepare(raw_root, classes="yes", holdout=0.5, seed=1)
    held_out = lambda r: {e["sha256"] for e in r.manifest.images if e["split"] == "test" and e["label"] == "yes"}  # noqa: E731
    assert held_out(tumour_only) == held_out(split), "a class's hold-out does not depend on the other class"


def test_missing_class_folders_fail_before_any_work(tmp_path):
    write(tmp_path / "raw" / "images" / "a.png", encode(head_image()))
    with pytest.raises(DataError, match=r"No class folder \(yes/, no/\) with files"):
        prepare(tmp_path / "raw")
    (tmp_path / "raw2" / "yes").mkdir(parents=True)
    write(tmp_path / "raw2" / "no" / "a.png", encode(head_image()))
    with pytest.raises(DataError, match="No files in a yes/ folder"):
        prepare(tmp_path / "raw2", classes="yes")


def test_nothing_usable_is_a_clear_error(tmp_path):
    write(tmp_path / "raw" / "yes" / "a.jpg", b"not really a jpeg")
    write(tmp_path / "raw" / "yes" / "b.png", b"")
    with pytest.raises(DataError, match="None of the 2 files of class yes"):
        prepare(tmp_path / "raw")


def test_same_bytes_under_both_labels_is_not_trusted(raw_root):
    write(raw_root / "no" / "Y3.jpg", (raw_root / "yes" / "Y3.jpg").read_bytes())
    _, result = prepare(raw_root, classes="both", holdout=0.0)
    why = reasons(result)
    assert "same bytes under both" in why["yes/Y3.jpg"] and "same bytes under both" in why["no/Y3.jpg"]
    assert result.manifest.dataset.per_class == {"yes": 5, "no": 4}


def test_saved_file_round_trips_with_its_manifest(raw_root):
    cfg, result = prepare(raw_root, classes="both", holdout=0.3)
    path = save_processed(result, processed_path(cfg))
    train, labels, manifest = load_processed(path, "train")
    test, _, _ = load_processed(path, "test")
    assert len(train) + len(test) == 10 and len(test) == 3
    assert manifest.dataset.file_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert [e["split"] for e in manifest.images].count("test") == 3
    every, _, _ = load_processed(path, None)
    np.testing.assert_array_equal(every, result.images)


def test_loading_before_preprocessing_says_what_to_run(tmp_path):
    with pytest.raises(DataError, match="02_preprocess"):
        load_processed(tmp_path / "nothing.npz")
