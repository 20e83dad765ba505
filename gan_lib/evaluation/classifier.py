"""A small CNN tumour classifier (yes/no, or each class of a dataset's classes="all"): the report's
stated goal, used to ask whether generated images help tumour detection on held-out real scans.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
from keras import layers

CLASSIFIER_SIDE = 64  # images are average-pooled to this side: the task needs no finer detail


def build_classifier(image_size: int, n_classes: int = 2) -> keras.Model:
    """Three strided conv blocks, global average pooling, a 64-unit layer, a sigmoid unit (more
    than two classes: a softmax over them)."""
    pool = max(1, image_size // CLASSIFIER_SIDE)
    return keras.Sequential([
        keras.Input((image_size, image_size, 1)),
        layers.AveragePooling2D(pool) if pool > 1 else layers.Identity(),
        layers.RandomFlip("horizontal"),  # active in training only; brains are near-symmetric
        layers.Conv2D(16, 3, strides=2, padding="same", activation="relu"),
        layers.Conv2D(32, 3, strides=2, padding="same", activation="relu"),
        layers.Conv2D(64, 3, strides=2, padding="same", activation="relu"),
        layers.GlobalAveragePooling2D(),
        layers.Dense(64, activation="relu"),
        layers.Dropout(0.3),
        layers.Dense(1, activation="sigmoid") if n_classes == 2 else layers.Dense(n_classes, activation="softmax"),
    ], name="tumour_classifier")


def train_classifier(images: np.ndarray, labels: np.ndarray, seed: int, epochs: int, batch_size: int = 16,
                     n_classes: int = 2) -> keras.Model:
    """Fit on (images, labels) with classes weighted to balance, so adding images of one class
    changes what the model sees, not the decision threshold's prior."""
    keras.utils.set_random_seed(seed)
    model = build_classifier(images.shape[1], n_classes)
    two = n_classes == 2
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss="binary_crossentropy" if two else "sparse_categorical_crossentropy")
    counts = np.bincount(labels.astype(int), minlength=n_classes)
    weights = {c: len(labels) / (float(n_classes) * max(counts[c], 1)) for c in range(n_classes)}
    model.fit(images, labels.astype(np.float32 if two else np.int32), epochs=epochs, batch_size=batch_size,
              shuffle=True, class_weight=weights, verbose=0)
    return model


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve from ranks (ties averaged); NaN when only one class is present."""
    labels = np.asarray(labels).astype(bool)
    if labels.all() or not labels.any():
        return float("nan")
    order = np.argsort(scores)
    ranks = np.empty(len(scores))
    sorted_scores = np.asarray(scores)[order]
    # average the ranks of tied scores
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    for start, count in zip(first, counts):
        ranks[order[start:start + count]] = start + (count + 1) / 2.0
    n_pos, n_neg = labels.sum(), (~labels).sum()
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


@dataclass(frozen=True)
class Scores:
    accuracy: float
    auc: float  # more than two classes: the mean of the per-class AUCs (macro)
    per_class_auc: tuple[float, ...] | None = None  # more than two classes: each class against the rest


def _calls(p: np.ndarray) -> np.ndarray:
    """Each image's class from the model's outputs: the sigmoid at 0.5, or the softmax's largest."""
    return (p[:, 0] >= 0.5).astype(int) if p.shape[-1] == 1 else p.argmax(axis=1)


def predicted_classes(model: keras.Model, images: np.ndarray) -> np.ndarray:
    return _calls(np.asarray(model(images, training=False))) if len(images) else np.zeros(0, int)


def evaluate(model: keras.Model, images: np.ndarray, labels: np.ndarray) -> Scores:
    p = np.asarray(model(images, training=False))
    accuracy = float((_calls(p) == labels).mean())
    if p.shape[-1] == 1:
        return Scores(accuracy, roc_auc(labels, p[:, 0]))
    per_class = tuple(roc_auc(labels == c, p[:, c]) for c in range(p.shape[-1]))
    return Scores(accuracy, float(np.nanmean(per_class)), per_class)

