"""Generator and discriminator architectures, chosen by name from a registry.

`report` and `report-v1` are the student report's two models, layer for layer (see
`../shared/SEED_NOTES.md`), at 128x128; at other sizes the generator starts from a proportionally
smaller grid so the same layers produce `image_size`. Add a preset by registering a pair of
builders in `ARCHITECTURES`; notebooks never branch on the name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import keras
from keras import layers

from .config import GANConfig


@dataclass(frozen=True)
class Architecture:
    build_generator: Callable[[GANConfig], keras.Model]
    build_discriminator: Callable[[GANConfig], keras.Model]
    description: str


def _start_side(cfg: GANConfig, upsamplings: int) -> int:
    side, rest = divmod(cfg.image_size, 2**upsamplings)
    if rest or side < 2:
        raise ValueError(f"image_size={cfg.image_size} is not reachable with {upsamplings} doublings")
    return side


def report_generator(cfg: GANConfig) -> keras.Model:
    """The report's final G ("Yeni Model"): Dense -> 32x32x256 at 128 px, two ConvT x2, Conv tanh."""
    side = _start_side(cfg, 2)
    return keras.Sequential([
        keras.Input((cfg.noise_dim,)),
        layers.Dense(side * side * 256),
        layers.LeakyReLU(0.2),
        layers.Reshape((side, side, 256)),
        layers.Conv2DTranspose(128, (4, 4), strides=2, padding="same"),
        layers.LeakyReLU(0.2),
        layers.Conv2DTranspose(128, (4, 4), strides=2, padding="same"),
        layers.LeakyReLU(0.2),
        layers.Conv2D(1, (4, 4), padding="same", activation="tanh"),
    ], name="generator_report")


def report_discriminator(cfg: GANConfig) -> keras.Model:
    """The report's final D: four 3x3 convs (three strided) with LeakyReLU, Dropout(0.4), sigmoid."""
    return keras.Sequential([
        keras.Input((cfg.image_size, cfg.image_size, 1)),
        layers.Conv2D(64, 3, padding="same"),
        layers.LeakyReLU(0.2),
        layers.Conv2D(128, 3, strides=2, padding="same"),
        layers.LeakyReLU(0.2),
        layers.Conv2D(128, 3, strides=2, padding="same"),
        layers.LeakyReLU(0.2),
        layers.Conv2D(256, 3, strides=2, padding="same"),
        layers.LeakyReLU(0.2),
        layers.Flatten(),
        layers.Dropout(0.4),
        layers.Dense(1, activation="sigmoid"),
    ], name="discriminator_report")


def report_v1_generator(cfg: GANConfig) -> keras.Model:
    """The report's first G ("Onceki Model"): Dense relu -> 16x16x128 at 128 px, three ConvT x2 with BN."""
    side = _start_side(cfg, 3)
    return keras.Sequential([
        keras.Input((cfg.noise_dim,)),
        layers.Dense(side * side * 128, activation="relu"),
        layers.Reshape((side, side, 128)),
        layers.Conv2DTranspose(128, 4, strides=2, padding="same"),
        layers.BatchNormalization(),
        layers.ReLU(),
        layers.Conv2DTranspose(64, 4, strides=2, padding="same"),
        layers.BatchNormalization(),
        layers.ReLU(),
        layers.Conv2DTranspose(1, 4, strides=2, padding="same", activation="tanh"),
    ], name="generator_report_v1")


def report_v1_discriminator(cfg: GANConfig) -> keras.Model:
    """The report's first D: two 4x4 strided convs with LeakyReLU, then a sigmoid unit."""
    return keras.Sequential([
        keras.Input((cfg.image_size, cfg.image_size, 1)),
        layers.Conv2D(64, 4, strides=2, padding="same"),
        layers.LeakyReLU(0.2),
        layers.Conv2D(128, 4, strides=2, padding="same"),
        layers.LeakyReLU(0.2),
        layers.Flatten(),
        layers.Dense(1, activation="sigmoid"),
    ], name="discriminator_report_v1")


ARCHITECTURES: dict[str, Architecture] = {
    "report": Architecture(report_generator, report_discriminator,
                           "the report's final model (Yeni Model): the faithful reproduction"),
    "report-v1": Architecture(report_v1_generator, report_v1_discriminator,
                              "the report's first model (Onceki Model), with BatchNorm in G"),
}


def build_models(cfg: GANConfig) -> tuple[keras.Model, keras.Model]:
    """(generator, discriminator) for `cfg.arch`; an unknown name lists the known ones."""
    if cfg.arch not in ARCHITECTURES:
        raise ValueError(f"arch={cfg.arch!r}; known architectures: {sorted(ARCHITECTURES)}")
    arch = ARCHITECTURES[cfg.arch]
    return arch.build_generator(cfg), arch.build_discriminator(cfg)
