"""Differentiable augmentation of everything the discriminator sees (real and generated images, in
both updates), after DiffAugment (Zhao et al., 2020) and StyleGAN2-ADA (Karras et al., 2020): with
~141 training images D memorises them unless its inputs vary, and because the generated images
are augmented the same way, G is not pushed to produce augmented-looking images.

Each operation is applied to each image with probability `p` (ADA's form; DiffAugment is p = 1).
Images are (N, H, W, 1) in [-1, 1] with black (-1) background. Colour saturation is left out: it
does nothing to one-channel images.
"""

from __future__ import annotations

import tensorflow as tf

OPERATIONS = ("translation", "cutout", "brightness", "contrast")
TRANSLATION = 1 / 8  # shift of up to this share of the side, filled with background
CUTOUT = 1 / 2  # side of the erased square, as a share of the image side
# With adaptive p (ADA), the images it takes p to cross [0, 1]. StyleGAN2-ADA uses 500k images for
# runs of millions; the report's schedule shows 150k, the benchmark 24k, so p must move faster.
ADA_SPEED_IMAGES = 10_000


class AdaController:
    """StyleGAN2-ADA's controller of the augmentation probability p, on D's accuracy on real images
    (a running mean): above `target` D is overfitting, so augment more; below it, less. p can cross
    [0, 1] in ADA_SPEED_IMAGES images. Without a policy p stays 0; with a target of 0 p stays at
    its start (fixed-p augmentation)."""

    def __init__(self, policy: tuple[str, ...], start_p: float, target: float, batch_size: int):
        self.p = tf.Variable(start_p if policy else 0.0, dtype=tf.float32, trainable=False, name="augment_p")
        self.real_accuracy = tf.Variable(0.5, dtype=tf.float32, trainable=False, name="real_accuracy")
        self.adaptive = bool(policy) and target > 0
        self.target = target
        self.batch_size = batch_size

    def update(self, real_accuracy) -> None:
        self.real_accuracy.assign(0.95 * self.real_accuracy + 0.05 * real_accuracy)
        direction = tf.sign(self.real_accuracy - self.target)
        change = direction * self.batch_size / ADA_SPEED_IMAGES
        self.p.assign(tf.clip_by_value(self.p + change, 0.0, 1.0))


def parse_policy(policy: str) -> tuple[str, ...]:
    """"translation,cutout" -> ("translation", "cutout"); "" -> () (no augmentation)."""
    names = tuple(name.strip() for name in policy.split(",") if name.strip())
    unknown = sorted(set(names) - set(OPERATIONS))
    if unknown:
        raise ValueError(f"augmentation {unknown} unknown; choose from {OPERATIONS}")
    return names


def _chosen(rng: tf.random.Generator, n, p) -> tf.Tensor:
    """(N, 1, 1, 1) float mask: 1 for the images this operation applies to."""
    return tf.cast(rng.uniform([n, 1, 1, 1]) < p, tf.float32)


# Each operation in two halves: its random numbers for n images of side h (drawn first, in this
# order), then the images changed by them. Drawn apart, the numbers of a whole batch can be split
# between replicas (gan_lib.training.step), which then augment exactly as one device would.
def _draw_shift(rng, n, p, h):
    chosen = _chosen(rng, n, p)
    return {"chosen": chosen, "amount": rng.uniform([n, 1, 1, 1]) - 0.5}


def brightness(x, draws):
    return x + draws["chosen"] * draws["amount"]


def contrast(x, draws):
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    return mean + (x - mean) * (1.0 + draws["chosen"] * draws["amount"])


def _translation_pad(h) -> int:
    return max(1, int(h * TRANSLATION))


def _draw_translation(rng, n, p, h):
    pad = _translation_pad(h)
    chosen = tf.cast(_chosen(rng, n, p)[:, 0, 0, 0], tf.int32)
    return {"shift": rng.uniform([n, 2], -pad, pad + 1, dtype=tf.int32) * chosen[:, None]}


def translation(x, draws):
    """Shift each chosen image by whole pixels (up to TRANSLATION of the side), background filling in."""
    h, w, shift = x.shape[1], x.shape[2], draws["shift"]
    pad = _translation_pad(h)
    padded = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]], constant_values=-1.0)
    rows = tf.range(h)[None, :] + pad - shift[:, :1]  # (N, H)
    cols = tf.range(w)[None, :] + pad - shift[:, 1:]  # (N, W)
    picked = tf.gather(padded, rows, axis=1, batch_dims=1)  # (N, H, W + 2 pad, 1)
    return tf.gather(picked, cols, axis=2, batch_dims=1)


def _cutout_size(h) -> int:
    return max(1, int(h * CUTOUT))


def _draw_cutout(rng, n, p, h):
    size = _cutout_size(h)
    chosen = _chosen(rng, n, p)
    top = rng.uniform([n, 1], 0, h - size + 1, dtype=tf.int32)
    return {"chosen": chosen, "top": top, "left": rng.uniform([n, 1], 0, h - size + 1, dtype=tf.int32)}


def cutout(x, draws):
    """Erase a random square (CUTOUT of the side) of each chosen image to background."""
    h, w, size = x.shape[1], x.shape[2], _cutout_size(x.shape[1])
    top, left = draws["top"], draws["left"]
    in_rows = (tf.range(h)[None] >= top) & (tf.range(h)[None] < top + size)  # (N, H)
    in_cols = (tf.range(w)[None] >= left) & (tf.range(w)[None] < left + size)  # (N, W)
    hole = tf.cast(in_rows[:, :, None] & in_cols[:, None, :], tf.float32)[..., None] * draws["chosen"]
    return x * (1.0 - hole) - hole


FUNCTIONS = {"translation": (_draw_translation, translation), "cutout": (_draw_cutout, cutout),
             "brightness": (_draw_shift, brightness), "contrast": (_draw_shift, contrast)}


def draw(rng: tf.random.Generator, n, side: int, p, policy: tuple[str, ...]) -> dict:
    """The random numbers `augment_with` takes for n square images of `side` px: per operation, in a
    fixed order; each operation applies to each image with probability p."""
    return {name: FUNCTIONS[name][0](rng, n, p, side) for name in OPERATIONS if name in policy}


def augment_with(x, draws: dict):
    """The images changed by the operations `draws` holds (a slice of them holds a slice of the batch)."""
    x = tf.cast(x, tf.float32)  # float16 generator outputs under mixed precision; D casts back
    for name in OPERATIONS:
        if name in draws:
            x = FUNCTIONS[name][1](x, draws[name])
    return x


def augment(x, rng: tf.random.Generator, p, policy: tuple[str, ...]):
    """Apply the policy's operations in a fixed order, each to each image with probability p."""
    return augment_with(x, draw(rng, tf.shape(x)[0], x.shape[1], p, policy))
