"""Feature extractors for KID/FID: InceptionV3 with ImageNet weights (the standard), from a pinned
weight file checked by hash and cached under `<data_root>/weights` so later runs work offline; or,
where those weights cannot be had, the project's own tumour classifier trained on the real
training images. The choice is never silent: it is printed and written into metrics.json.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from .config import FEATURE_EXTRACTORS

# Keras's own no-top InceptionV3 ImageNet weights, and the MD5 Keras pins for them.
INCEPTION_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/"
                 "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5")
INCEPTION_MD5 = "bcbd6486424b2319ff4ef7d526e38f63"
INCEPTION_SIDE = 299


class FeatureExtractorUnavailable(RuntimeError):
    """The requested feature extractor cannot be built here; the message says why and what to do."""


@dataclass
class FeatureExtractor:
    name: str  # "inception_v3_imagenet" or "tumour_classifier"
    description: str  # what a reader of metrics.json needs to know to compare numbers
    extract: Callable[[np.ndarray], np.ndarray]


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


def classifier_extractor(model: keras.Model) -> FeatureExtractor:
    from .classifier import feature_model

    features = feature_model(model)
    return FeatureExtractor(
        "tumour_classifier",
        "the project's tumour classifier (64-d features, trained here on the real training split), "
        "NOT InceptionV3: values are comparable only with other values from this extractor",
        lambda images: np.asarray(features.predict(images, batch_size=64, verbose=0)))


def choose_extractor(choice: str, cache_dir: Path, train_classifier: Callable[[], keras.Model]) -> FeatureExtractor:
    """`inception` or `classifier` as asked; `auto` is InceptionV3 where its weights can be had,
    else the classifier, announced loudly. `inception` with no weights raises."""
    if choice not in FEATURE_EXTRACTORS:
        raise ValueError(f"feature_extractor={choice!r}; choose one of {FEATURE_EXTRACTORS}")
    if choice != "classifier":
        try:
            return inception_extractor(cache_dir)
        except FeatureExtractorUnavailable as err:
            if choice == "inception":
                raise
            print(f"WARNING: {err}\nWARNING: KID/FID below use the project's tumour classifier features "
                  "instead (feature_extractor=auto); metrics.json records this.")
    return classifier_extractor(train_classifier())
