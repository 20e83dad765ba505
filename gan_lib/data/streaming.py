"""Training images streamed from a dataset's shard files (gan_lib.data.storage.write_shards) with
tf.data, for training splits larger than the memory budget: shard files in a seeded order that
changes every pass, read four at a time and interleaved, shuffled in a buffer, batched, decoded and
prefetched while the step runs. Only the buffer and a few batches are ever in memory.

Sampling differs from the in-memory path's (which draws each batch with replacement from all
images): images come in passes over the shards, shuffled within a buffer of SHUFFLE_IMAGES (which
spans neighbouring passes when the set is smaller than it), so over many batches every image comes
about equally often. The iterator is checkpointed with the run, shuffle buffer included, so a
resumed run continues the same sequence of batches.
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

SHUFFLE_IMAGES = 512  # images in the shuffle buffer: part of every checkpoint (8 MB at 64 px, 34 MB at 128)
READ_AT_ONCE = 4  # shard files interleaved


def batches(files: list[Path], side: int, batch: int, seed: int) -> tf.data.Dataset:
    """Batches of (images (B, side, side, 1) float32, labels (B,) int32) from the shards, forever;
    the same for the same seed."""
    record_bytes = (side * side + 1) * 4

    def decode(records):
        values = tf.io.decode_raw(records, tf.float32)
        return tf.reshape(values[:, 1:], [-1, side, side, 1]), tf.cast(values[:, 0], tf.int32)

    # A dataset op's shuffle seed combines its own seed with TensorFlow's global one: fix both, so
    # the batches do not depend on what ran before in the process (training seeds it the same way)
    tf.random.set_seed(seed)
    order = tf.data.Dataset.from_tensor_slices([str(f) for f in files]).shuffle(len(files), seed=seed).repeat()
    records = order.interleave(lambda f: tf.data.FixedLengthRecordDataset(f, record_bytes),
                               cycle_length=min(READ_AT_ONCE, len(files)), num_parallel_calls=tf.data.AUTOTUNE,
                               deterministic=True)
    return (records.shuffle(SHUFFLE_IMAGES, seed=seed + 1).batch(batch, drop_remainder=True)
            .map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(2))
