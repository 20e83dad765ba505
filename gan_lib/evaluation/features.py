"""Feature extractors for KID/FID: InceptionV3 with ImageNet weights (the standard), from a pinned
weight file checked by hash and cached under `<data_root>/weights` so later runs work offline; or,
where those weights cannot be had, a fixed random-weight CNN. The choice is never silent: it is
printed and written into metrics.json.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from ..config import FEATURE_EXTRACTORS

# Keras's own no-top InceptionV3 ImageNet weights, and the MD5 Keras pins for them.
INCEPTION_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/"
                 "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5")
INCEPTION_MD5 = "bcbd6486424b2319ff4ef7d526e38f63"
INCEPTION_SIDE = 299


class FeatureExtractorUnavailable(RuntimeError):
    """The requested feature extractor cannot be built here; the message says why and what to do."""


@dataclass
class FeatureExtractor:
    name: str  # "inception_v3_imagenet" or "random_cnn"
    description: str  # what a reader of metrics.json needs to know to compare numbers
    extract: Callable[[np.ndarray], np.ndarray]
    standardise: bool = False  # scale features by the real training set's mean and std (arbitrary scales)


def inception_weights(cache_dir: Path) -> Path:
    """The pinned weight file: from the cache if its hash matches, else downloaded and checked."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    try:
        return Path(keras.utils.get_file(Path(INCEPTION_URL).name, INCEPTION_URL, file_hash=INCEPTION_MD5,
                                         cache_dir=str(cache_dir), cache_subdir="."))
    except Exception as err:  # noqa: BLE001 - network and hash errors alike end in one message
        raise FeatureExtractorUnavailable(
            f"InceptionV3 ImageNet weights are not in {cache_dir} and could not be downloaded from "
            f"{INCEPTION_URL} ({type(err).__name__}: {err}). On a machine with internet they are fetched "
            f"once (92 MB) and checked by MD5; or copy the file into {cache_dir}.") from err


def inception_extractor(cache_dir: Path, batch: int = 32) -> FeatureExtractor:
    weights = inception_weights(cache_dir)
    model = keras.applications.InceptionV3(include_top=False, weights=None, pooling="avg",
                                           input_shape=(INCEPTION_SIDE, INCEPTION_SIDE, 3))
    model.load_weights(weights)

    @tf.function
    def embed(x):
        # [-1, 1] grey -> 299x299 RGB in [-1, 1], which is InceptionV3's own input scaling
        x = tf.image.resize(x, (INCEPTION_SIDE, INCEPTION_SIDE), method="bilinear")
        return model(tf.repeat(x, 3, axis=-1), training=False)

    def extract(images: np.ndarray) -> np.ndarray:
        return np.concatenate([embed(tf.constant(images[i:i + batch], tf.float32)).numpy()
                               for i in range(0, len(images), batch)])

    return FeatureExtractor("inception_v3_imagenet",
                            "InceptionV3 (ImageNet weights, 2048-d pool features): the standard KID/FID", extract)


def random_cnn_extractor(image_size: int, seed: int = 0) -> FeatureExtractor:
    """A fixed, randomly initialised CNN (four stride-2 3x3 conv layers, 32-256 channels), its
    global-average-pooled activations of every layer concatenated (480-d). Random embeddings are
    Naeem et al.'s (ICML 2020) choice for images far from ImageNet; measured here, they tell
    750-step GAN images from real scans where the tumour classifier's features could not."""
    inputs = keras.Input((image_size, image_size, 1))
    x, pooled = inputs, []
    for i, channels in enumerate((32, 64, 128, 256)):
        x = keras.layers.Conv2D(channels, 3, strides=2, padding="same", activation="relu",
                                kernel_initializer=keras.initializers.GlorotUniform(seed=seed + i))(x)
        pooled.append(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, keras.layers.Concatenate()(pooled))
    return FeatureExtractor(
        "random_cnn",
        "a fixed random-weight CNN (480-d multi-layer pooled features, standardised on the real training "
        "images), NOT InceptionV3: values are comparable only with other values from this extractor",
        lambda images: np.asarray(model.predict(images, batch_size=64, verbose=0)), standardise=True)


def choose_extractor(choice: str, cache_dir: Path, image_size: int) -> FeatureExtractor:
    """`inception` or `random_cnn` as asked; `auto` is InceptionV3 where its weights can be had,
    else the random CNN, announced loudly. `inception` with no weights raises."""
    if choice not in FEATURE_EXTRACTORS:
        raise ValueError(f"feature_extractor={choice!r}; choose one of {FEATURE_EXTRACTORS}")
    if choice != "random_cnn":
        try:
            return inception_extractor(cache_dir)
        except FeatureExtractorUnavailable as err:
            if choice == "inception":
                raise
            print(f"WARNING: {err}\nWARNING: KID/FID below use fixed random-CNN features instead "
                  "(feature_extractor=auto); metrics.json records this.")
    return random_cnn_extractor(image_size)
