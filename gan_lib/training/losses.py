"""GAN losses, each a pair of functions (D's, G's) of D's outputs; the R1 penalty and its lazy
form; the mismatched-label term of a conditional D.

D outputs probabilities (the report's sigmoid head) or logits (`from_logits`). D's update calls
only D's loss and G's update only G's, so neither computes a loss it throws away.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import keras
import tensorflow as tf


def _bce(target, output, from_logits: bool):
    return tf.reduce_mean(keras.losses.binary_crossentropy(target, output, from_logits=from_logits))


def bce_d_loss(d_real, d_fake, from_logits: bool, real_label: float):
    """The report's binary cross-entropy, averaged over real (target `real_label`, the report's 1)
    and generated (target 0) images."""
    real_target = tf.fill(tf.shape(d_real), tf.cast(real_label, d_real.dtype))
    return 0.5 * (_bce(real_target, d_real, from_logits) + _bce(tf.zeros_like(d_fake), d_fake, from_logits))


def bce_g_loss(d_gen, from_logits: bool):
    """G's non-saturating form: BCE of D's output on its images against ones."""
    return _bce(tf.ones_like(d_gen), d_gen, from_logits)


def hinge_d_loss(d_real, d_fake, from_logits: bool, real_label: float):
    """Hinge loss (Lim & Ye 2017; SAGAN, BigGAN): D stops pushing an image once it is past its
    margin, so it cannot drive its outputs to the extremes the report's D reached. On logits only
    (GANTrainer refuses it for a sigmoid D). It has no target: GANConfig refuses a real_label
    other than 1 with it."""
    return 0.5 * (tf.reduce_mean(tf.nn.relu(1.0 - d_real)) + tf.reduce_mean(tf.nn.relu(1.0 + d_fake)))


def hinge_g_loss(d_gen, from_logits: bool):
    return -tf.reduce_mean(d_gen)


@dataclass(frozen=True)
class Loss:
    d_loss: Callable  # (d_real, d_fake, from_logits, real_label) -> D's loss
    g_loss: Callable  # (d_gen, from_logits) -> G's loss


LOSSES: dict[str, Loss] = {"bce": Loss(bce_d_loss, bce_g_loss), "hinge": Loss(hinge_d_loss, hinge_g_loss)}


def r1_penalty(input_tape, d_real, real, gamma: float, from_logits: bool, float16: bool):
    """R1: (gamma/2) · mean over reals of |d logit / d image|^2, which pulls D's surface flat at the
    data, so G and D settle instead of circling (Mescheder et al. 2018). Called inside D's tape: its
    gradient wrt D's weights is a second derivative. A sigmoid D's logit is log(p / (1 - p)), whose
    slope in p is 1 / (p (1 - p)), floored where p rounds to 0 or 1 (D's output is float32:
    `models.output_unit`). Under float16 that slope enters a float16 backward pass, so p (1 - p) is
    floored at 1e-4 (a slope of at most 1e4) and the input gradient is not loss-scaled: either would
    overflow float16."""
    floor = 1e-4 if float16 else 1e-7
    logit_slope = tf.ones_like(d_real) if from_logits else 1.0 / tf.maximum(d_real * (1.0 - d_real), floor)
    grad = input_tape.gradient(d_real, real, output_gradients=logit_slope)
    return 0.5 * gamma * tf.reduce_mean(tf.reduce_sum(tf.square(grad), axis=[1, 2, 3]))


def with_lazy_r1(d_loss, penalty, every: int):
    """(D's loss as logged, with R1 at its weight per step, so the curve is comparable whatever
    `every`; what D minimises, with R1 weighted `every` times on the steps it is computed:
    StyleGAN2's lazy regularisation)."""
    logged = d_loss + penalty
    return logged, logged if every == 1 else logged + (every - 1) * penalty


def mismatched_labels(labels, n_classes: int):
    """Each real image's label moved to another class, for the mismatched-label term."""
    return (labels + 1) % n_classes


def with_mismatched(d_fake, d_mismatched):
    """D's outputs to be called generated: on G's images and, when asked for, on real images under
    the wrong label (`d_mismatched`, the matching-aware D of Reed et al. 2016, the two halves
    weighted equally). A real scan under the wrong label must then look fake to D, so D's verdict
    turns on the class and G must draw the class it is asked for."""
    return d_fake if d_mismatched is None else tf.concat([d_fake, d_mismatched], axis=0)
