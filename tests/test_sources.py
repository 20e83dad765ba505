"""The raw-data routes: kagglehub (against a cache built here), local, drive off Colab, phantom."""

from __future__ import annotations

import pytest
from conftest import encode, head_image, write

from gan_lib.config import KAGGLE_DATASET, GANConfig
from gan_lib.data.prepare import prepare_dataset
from gan_lib.data.sources import DataSourceError, fetch_raw

OWNER, SLUG, _, VERSION = KAGGLE_DATASET.split("/")


def kaggle_cfg(tmp_path):
    return GANConfig.from_overrides(data_source="kaggle", data_root=str(tmp_path / "data"), image_size=64)


def test_kaggle_reads_a_populated_cache_offline(tmp_path, monkeypatch, offline):
    cache = tmp_path / "kagglehub"
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(cache))
    version_dir = cache / "datasets" / OWNER / SLUG / "versions" / VERSION
    # The Kaggle archive holds every image twice: top level and brain_tumor_dataset/.
    for top in (version_dir, version_dir / "brain_tumor_dataset"):
        for i in range(3):
            write(top / "yes" / f"Y{i}.jpg", encode(head_image(seed=i, radius=(60 + 15 * i, 110)), ".jpg"))
        write(top / "no" / "N0.jpg", encode(head_image(seed=9), ".jpg"))
    write(cache / "datasets" / OWNER / SLUG / f"{VERSION}.complete", b"")  # kagglehub's completion marker

    cfg = kaggle_cfg(tmp_path)
    raw = fetch_raw(cfg)
    assert raw.root == version_dir and raw.source == "kaggle" and not raw.synthetic
    result = prepare_dataset(cfg, raw)
    assert result.manifest.dataset.per_class == {"yes": 3}
    assert result.manifest.dataset.source_detail == f"kagglehub {KAGGLE_DATASET}"


def test_kaggle_without_network_or_cache_says_what_to_do(tmp_path, monkeypatch, offline):
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(DataSourceError) as err:
        fetch_raw(kaggle_cfg(tmp_path))
    message = str(err.value)
    assert "data_source='phantom'" in message and "data_source='local'" in message
    assert "data_source='drive'" in message and "KAGGLE_USERNAME" in message and "kagglehub.login()" in message
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_local_and_drive_need_a_folder(tmp_path):
    for source in ("local", "drive"):
        with pytest.raises(DataSourceError, match="needs data_dir"):
            fetch_raw(GANConfig.from_overrides(data_source=source))


def test_local_folder_must_exist(tmp_path):
    cfg = GANConfig.from_overrides(data_source="local", data_dir=str(tmp_path / "nope"))
    with pytest.raises(DataSourceError, match="does not exist"):
        fetch_raw(cfg)


def test_drive_off_colab_is_read_as_a_local_folder_and_says_so(tmp_path, capsys):
    (tmp_path / "mri" / "yes").mkdir(parents=True)
    raw = fetch_raw(GANConfig.from_overrides(data_source="drive", data_dir=str(tmp_path / "mri")))
    assert raw.source == "local" and "off Colab" in raw.detail
    assert "WARNING" in capsys.readouterr().out


def test_phantom_is_written_once_and_named_synthetic(tmp_path):
    cfg = GANConfig.from_overrides(data_source="phantom", data_root=str(tmp_path / "data"))
    raw = fetch_raw(cfg)
    assert raw.synthetic and "SYNTHETIC" in raw.detail
    first = (raw.root / "phantom.json").stat().st_mtime_ns
    fetch_raw(cfg)
    assert (raw.root / "phantom.json").stat().st_mtime_ns == first, "an unchanged spec is not rewritten"
