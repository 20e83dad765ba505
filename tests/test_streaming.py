"""A training split over the memory budget: written as shards, streamed with tf.data, resumed exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import data_copy, small_cfg

from gan_lib.config import GANConfig
from gan_lib.data.storage import (load_processed, processed_path, read_shards, save_processed, shards_sha256,
                                  split_sha256)
from gan_lib.data.streaming import batches
from gan_lib.runs.location import run_path
from gan_lib.runs.logs import load_history
from gan_lib.training.loop import train

pytestmark = pytest.mark.slow  # trains, or starts processes or notebooks: not in `make test-fast`

TINY_BUDGET_MB = 0.1  # the 32-px phantom's training split takes 0.48 MB


def test_shards_hold_the_training_split_in_order_and_02_writes_them_over_the_budget(tmp_path):
    from gan_lib.data.prepare import prepare_dataset
    from gan_lib.data.sources import fetch_raw

    cfg = GANConfig.from_overrides(data_source="phantom", data_root=str(tmp_path), image_size=32)
    path = save_processed(prepare_dataset(cfg, fetch_raw(cfg)), processed_path(cfg), memory_budget_mb=TINY_BUDGET_MB)
    images, labels, manifest = load_processed(path, "train")
    shards = manifest.dataset.shards
    files = [path.with_suffix(".shards") / name for name in shards["files"]]
    read = list(read_shards(files, 32))
    np.testing.assert_array_equal(np.concatenate([i for i, _ in read]), images)
    np.testing.assert_array_equal(np.concatenate([l for _, l in read]), labels)
    assert shards_sha256(files, 32)[0] == split_sha256(images, labels) == manifest.dataset.train_sha256
    assert len(list(read_shards(files, 32, limit=5))[0][0]) == 5


def test_a_stream_gives_every_training_image_and_its_label_in_seeded_batches(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (40, 8, 8, 1)).astype("float32")
    labels = (np.arange(40) % 2).astype("int8")
    folder = tmp_path / "s.shards"
    folder.mkdir()
    for number, start in enumerate(range(0, 40, 10)):  # four shards
        records = np.concatenate([labels[start:start + 10, None], images[start:start + 10].reshape(10, -1)], axis=1)
        records.astype("float32").tofile(folder / f"train-{number:05d}.f32")
    files = sorted(folder.iterdir())
    first = [(np.asarray(x), np.asarray(y)) for x, y in batches(files, 8, 4, seed=3).take(100)]
    again = [(np.asarray(x), np.asarray(y)) for x, y in batches(files, 8, 4, seed=3).take(100)]
    assert all((a[0] == b[0]).all() for a, b in zip(first, again)), "the same seed gives the same batches"
    seen = np.concatenate([x for x, _ in first]).reshape(400, -1)
    index = {image.tobytes(): i for i, image in enumerate(images.reshape(40, -1))}
    found = [index[row.tobytes()] for row in seen]  # every streamed image is a training image ...
    assert set(found) == set(range(40)), "... and ten passes' worth show all of them"
    np.testing.assert_array_equal(np.concatenate([y for _, y in first]), labels[found], "each with its own label")


def test_a_streamed_run_records_it_and_resumes_to_the_same_history(data_root, tmp_path):
    root = data_copy(data_root, tmp_path)
    settings = dict(memory_budget_mb=TINY_BUDGET_MB, preset="report-ada-mbstd-r1-lean", r1_every=3, kid_every=6,
                    kid_images=16)
    whole = load_history(train(small_cfg(root, tmp_path, run_name="whole", **settings)))
    cfg = small_cfg(root, tmp_path, run_name="parts", **settings)
    train(cfg, stop_after_steps=7)  # the last checkpoint is at step 4, with the stream's position
    resumed = load_history(train(cfg))
    assert [r["step"] for r in resumed] == [r["step"] for r in whole]
    for name in ("d_loss", "g_loss", "d_real"):
        np.testing.assert_allclose([r[name] for r in resumed], [r[name] for r in whole], rtol=1e-5, err_msg=name)
    record = json.loads((run_path(cfg) / "config.json").read_text())
    assert record["effective"]["training_data"].startswith("streamed from 1 shard(s)")
    assert record["effective"]["train_images"] == 117
    in_memory = load_history(train(small_cfg(root, tmp_path, run_name="memory", **{**settings, "memory_budget_mb": 100.0})))
    assert [r["d_loss"] for r in in_memory] != [r["d_loss"] for r in whole], "streaming samples otherwise"
