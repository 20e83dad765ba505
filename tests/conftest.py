"""Builders for raw-data folders with every kind of file the real dataset (and worse) contains."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from gan_lib.data.storage import processed_path


def head_image(height: int = 300, width: int = 360, centre=(150, 200), radius=(90, 110), seed: int = 0) -> np.ndarray:
    """A bright textured ellipse (a 'head') on a near-black background, uint8 grey."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 12, (height, width)).astype(np.uint8)
    cv2.ellipse(img, (centre[1], centre[0]), (radius[1], radius[0]), 0, 0, 360, 170, -1)
    img[img == 170] = rng.integers(120, 220, int((img == 170).sum()))
    # a dark inner structure where the seed puts it, so heads differ once cropped and resized
    dy, dx = rng.uniform(-0.4, 0.4, 2)
    cv2.circle(img, (int(centre[1] + dx * radius[1]), int(centre[0] + dy * radius[0])), max(4, radius[0] // 4), 30, -1)
    return img


def encode(img: np.ndarray, ext: str = ".png") -> bytes:
    ok, buf = cv2.imencode(ext, img)
    assert ok
    return buf.tobytes()


def palette_png(img: np.ndarray) -> bytes:
    """A colour-type-3 (palette) PNG, which OpenCV cannot write, built by hand."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    h, w = img.shape
    palette = b"".join(bytes([v, v, v]) for v in range(256))
    rows = b"".join(b"\x00" + img[y].tobytes() for y in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0))
            + chunk(b"PLTE", palette) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def raw_root(tmp_path: Path) -> Path:
    """yes/ with 6 distinct heads + 1 duplicate, no/ with 4 distinct heads; mixed formats. The heads
    differ in shape, so they stay distinct once cropped to the head and resized."""
    root = tmp_path / "raw"
    for i in range(6):
        img = head_image(seed=i, centre=(120 + 10 * i, 150 + 15 * i), radius=(70 + 8 * i, 110 - 6 * i))
        data = encode(cv2.cvtColor(img, cv2.COLOR_GRAY2BGR), ".jpg") if i % 2 else encode(img)
        write(root / "yes" / f"Y{i}{'.jpg' if i % 2 else '.png'}", data)
    write(root / "yes" / "Y0 copy.png", (root / "yes" / "Y0.png").read_bytes())
    for i in range(4):
        write(root / "no" / f"N{i}.JPG", encode(head_image(seed=100 + i, radius=(60 + 10 * i, 105 - 9 * i)), ".jpg"))
    return root


@pytest.fixture
def offline(monkeypatch):
    """No route to the internet, wherever the tests run: HTTP(S) goes through a closed local port."""
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "")
    monkeypatch.setenv("no_proxy", "")


@pytest.fixture(scope="session")
def data_root(tmp_path_factory):
    """A data root holding one dataset: the phantom's tumour slices at 32 px, made once per test
    process and only read (a test that writes into its dataset's folder trains on a `data_copy`)."""
    from gan_lib.config import GANConfig
    from gan_lib.data.prepare import prepare_dataset
    from gan_lib.data.sources import fetch_raw
    from gan_lib.data.storage import save_processed

    root = tmp_path_factory.mktemp("data")
    cfg = GANConfig.from_overrides(data_source="phantom", data_root=str(root), image_size=32)
    save_processed(prepare_dataset(cfg, fetch_raw(cfg)), processed_path(cfg))
    return root


def data_copy(data_root, folder: Path) -> Path:
    """A copy of a shared data root, for a run that writes into its dataset's folder (shards)."""
    import shutil

    return Path(shutil.copytree(data_root, folder / "data"))


def small_cfg(data_root, tmp_path, **overrides):
    """A 12-step run of the report's GAN on `data_root`'s 32 px dataset, checkpointed every 4 steps."""
    from gan_lib.config import GANConfig

    settings = dict(data_source="phantom", data_root=str(data_root), image_size=32, output_root=str(tmp_path / "runs"),
                    run_name="t", epochs=2, steps_per_epoch=6, checkpoint_every=4, log_every=2, xla="off",
                    precision="float32", speed_layers="on",
                    kid_every=0, preset="report")
    return GANConfig.from_overrides(**{**settings, **overrides})


# The test files (and nbval's notebooks) in the order `make test` hands them out: the longest first,
# as measured on the 2-core machine (test_training 340 s ... test_layouts 16 s of an 870 s run), so
# that no worker is left running a long one alone at the end. A file not named runs after them.
LONGEST_FIRST = ("test_training.py", "test_faults.py", "test_distribute.py", "test_colab.py", "test_step.py",
                 "test_evaluation.py", "test_speed.py", "notebooks", "test_streaming.py", "test_models.py",
                 "test_layouts.py")


def scheduled_unit(path: str) -> str:
    """What `make test` hands a worker whole: a test file (by name), or "notebooks" for all of nbval's
    cells, as each notebook reads what the one before it wrote."""
    return "notebooks" if path.endswith(".ipynb") else Path(path).name


def pytest_collection_modifyitems(items):
    rank = {name: place for place, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(scheduled_unit(str(item.path)), len(LONGEST_FIRST)))  # stable


def pytest_xdist_make_scheduler(config, log):
    """`make test` (`--dist loadfile --no-loadscope-reorder`): each `scheduled_unit` on one worker, so
    a file's module fixtures are made once and the notebooks run in order, handed out as collected."""
    from xdist.scheduler import LoadScopeScheduling

    class ByUnit(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return scheduled_unit(nodeid.split("::")[0])

    return ByUnit(config, log) if config.getvalue("dist") == "loadfile" else None
