"""Generator and discriminator architectures, chosen by name from a registry.

`report` and `report-v1` are the student report's two models, layer for layer (see
docs/report.md; their transposed convolutions are computed by `PhaseConv2DTranspose`,
the same layer made faster: gan_lib.models.layers), at 128x128; at other sizes the generator starts from
a proportionally smaller grid so the same layers produce `image_size`. Add a preset by registering
a pair of builders in `ARCHITECTURES`; notebooks never branch on the name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import keras
from keras import layers

from ..config import GANConfig
from .layers import (MinibatchStddev, MirrorDifference, NarrowConv2D, PhaseConv2DTranspose, PhaseGradConv2D,
                     ReplicaDropout, SNConv2D, SNDense, SNNarrowConv2D)


@dataclass(frozen=True)
class Architecture:
    build_generator: Callable[[GANConfig], keras.Model]
    build_discriminator: Callable[[GANConfig], keras.Model]
    description: str
    d_logits: bool = False  # D ends in a logit (any loss) rather than the report's sigmoid (bce only)
    conditional: bool = False  # with classes="both" or "all", G and D take the class label as a second input


LABEL_EMBEDDING = 16  # length of the label's learned embedding, appended to G's noise


def is_conditional(cfg: GANConfig) -> bool:
    """Whether this run's models take labels: a conditional architecture trained on both classes (or all)."""
    return cfg.classes in ("both", "all") and cfg.arch in ARCHITECTURES and ARCHITECTURES[cfg.arch].conditional


def _batch_spread(cfg: GANConfig) -> list:
    """The layers D puts before its output head: MinibatchStddev if the config asks for it."""
    return [MinibatchStddev()] if cfg.minibatch_stddev else []


def _seen_input(cfg: GANConfig) -> list:
    """The layers D puts before its first convolution: MirrorDifference if the config asks for it."""
    return [MirrorDifference()] if cfg.symmetry_channel else []


def _start_side(cfg: GANConfig, upsamplings: int) -> int:
    side, rest = divmod(cfg.image_size, 2**upsamplings)
    if rest or side < 2:
        raise ValueError(f"image_size={cfg.image_size} is not reachable with {upsamplings} doublings")
    return side


def noise_projection(units: int, **kwargs) -> layers.Dense:
    """G's first layer, from the noise to its first grid, computed in float32 under every precision
    policy. Its kernel holds noise_dim/batch_size times more numbers than its outputs (25x at the
    report's batch of 4; 26 M weights at 128 px), so casting the kernel to bfloat16 or float16 each
    step costs more than the cheaper multiply saves (docs/hardware.md)."""
    return layers.Dense(units, dtype="float32", **kwargs)


def output_unit(dense=layers.Dense, activation: str | None = "sigmoid") -> layers.Dense:
    """D's output unit, computed in float32 under every precision policy (as Keras advises for a
    model's last layer). A bfloat16 sigmoid rounds to exactly 1 from a logit of about 5.6 (float16's
    from about 8, float32's from about 16.6); there BCE's clipped gradient and R1's input gradient
    are zero, so a sure D stops learning. A bfloat16 run at 128 px whose D grew sure of itself in
    its first 60 steps turned into a D that called every image real and never recovered."""
    return dense(1, activation=activation, dtype="float32")


def report_generator(cfg: GANConfig) -> keras.Model:
    """The report's final G ("Yeni Model"): Dense -> 32x32x256 at 128 px, two ConvT x2, Conv tanh.
    Conditional (classes="both" or "all"): the label's embedding is appended to the noise."""
    side = _start_side(cfg, 2)
    return _generator(cfg, [
        noise_projection(side * side * 256),
        layers.LeakyReLU(0.2),
        layers.Reshape((side, side, 256)),
        PhaseConv2DTranspose(128, (4, 4), strides=2, padding="same"),
        layers.LeakyReLU(0.2),
        PhaseConv2DTranspose(128, (4, 4), strides=2, padding="same"),
        layers.LeakyReLU(0.2),
        NarrowConv2D(1, (4, 4), padding="same", activation="tanh"),
    ], "generator_report")


def report_discriminator(cfg: GANConfig) -> keras.Model:
    """The report's final D: four 3x3 convs (three strided) with LeakyReLU, Dropout(0.4), sigmoid.
    Conditional: a projection discriminator (`_projection`) before the sigmoid."""
    body = [
        *_seen_input(cfg),
        NarrowConv2D(64, 3, padding="same"),
        layers.LeakyReLU(0.2),
        PhaseGradConv2D(128, 3, strides=2, padding="same"),
        layers.LeakyReLU(0.2),
        PhaseGradConv2D(128, 3, strides=2, padding="same"),
        layers.LeakyReLU(0.2),
        PhaseGradConv2D(256, 3, strides=2, padding="same"),
        layers.LeakyReLU(0.2),
        *_batch_spread(cfg),
        layers.Flatten(),
        ReplicaDropout(0.4),
    ]
    image = keras.Input((cfg.image_size, cfg.image_size, 1))
    if not is_conditional(cfg):
        return keras.Sequential([image, *body, output_unit()], name="discriminator_report")
    return _projection(cfg, image, body, layers.Dense, "sigmoid", "discriminator_report_conditional")


def _generator(cfg: GANConfig, body: list, name: str) -> keras.Model:
    """G from its layers, noise in; conditional, the label's learned embedding appended to the noise
    and, with `label_every_block`, `_class_gain_and_bias` after every activation on a grid."""
    noise = keras.Input((cfg.noise_dim,), name="noise")
    if not is_conditional(cfg):
        return keras.Sequential([noise, *body], name=name)
    label = keras.Input((), dtype="int32", name="label")
    x = layers.Concatenate()([noise, layers.Embedding(len(cfg.class_names()), LABEL_EMBEDDING)(label)])
    for layer in body:
        x = layer(x)
        if cfg.label_every_block and isinstance(layer, layers.LeakyReLU) and len(x.shape) == 4:
            x = _class_gain_and_bias(x, label, len(cfg.class_names()))
    return keras.Model([noise, label], x, name=f"{name}_conditional")


def _class_gain_and_bias(x, label, n_classes: int):
    """Each class's own gain and bias per channel: the class-conditional affine step of conditional
    BatchNorm (de Vries et al. 2017; Miyato & Koyama 2018's G), without the normalisation the
    report's G does not have. Entering only beside the noise, the label reaches the later blocks
    through one dense layer shared with 100 noise numbers, and a run whose two classes came out
    alike showed it too weak. Stock layers, so a saved G loads without gan_lib; it starts as the
    identity (gain 1, bias 0)."""
    side, channels = x.shape[1], x.shape[-1]
    gain, bias = (layers.Reshape((1, 1, channels))(
        layers.Embedding(n_classes, channels, embeddings_initializer=start, name=f"class_{kind}_{side}px")(label))
        for kind, start in (("gain", "ones"), ("bias", "zeros")))
    return layers.Add()([layers.Multiply()([x, gain]), bias])


def _projection(cfg: GANConfig, image, body: list, dense, activation: str | None, name: str) -> keras.Model:
    """A projection discriminator (Miyato & Koyama 2018) over D's layers: the output unit's logit
    plus the inner product of the features with the label's embedding, then D's activation, all in
    float32 (`output_unit`)."""
    features = image
    for layer in body:
        features = layer(features)
    label = keras.Input((), dtype="int32", name="label")
    one_hot = layers.CategoryEncoding(len(cfg.class_names()), output_mode="one_hot")(label)
    embedding = dense(features.shape[-1], use_bias=False, dtype="float32")(one_hot)
    logit = layers.Add(dtype="float32")([output_unit(dense, None)(features),
                                         layers.Dot(axes=1, dtype="float32")([embedding, features])])
    output = layers.Activation(activation, dtype="float32")(logit) if activation else logit
    return keras.Model([image, label], output, name=name)


def report_v1_generator(cfg: GANConfig) -> keras.Model:
    """The report's first G ("Onceki Model"): Dense relu -> 16x16x128 at 128 px, three ConvT x2 with BN."""
    side = _start_side(cfg, 3)
    return keras.Sequential([
        keras.Input((cfg.noise_dim,)),
        noise_projection(side * side * 128, activation="relu"),
        layers.Reshape((side, side, 128)),
        PhaseConv2DTranspose(128, 4, strides=2, padding="same"),
        layers.BatchNormalization(),
        layers.ReLU(),
        PhaseConv2DTranspose(64, 4, strides=2, padding="same"),
        layers.BatchNormalization(),
        layers.ReLU(),
        PhaseConv2DTranspose(1, 4, strides=2, padding="same", activation="tanh"),
    ], name="generator_report_v1")


def report_v1_discriminator(cfg: GANConfig) -> keras.Model:
    """The report's first D: two 4x4 strided convs with LeakyReLU, then a sigmoid unit."""
    return keras.Sequential([
        keras.Input((cfg.image_size, cfg.image_size, 1)),
        *_seen_input(cfg),
        PhaseGradConv2D(64, 4, strides=2, padding="same"),
        layers.LeakyReLU(0.2),
        PhaseGradConv2D(128, 4, strides=2, padding="same"),
        layers.LeakyReLU(0.2),
        *_batch_spread(cfg),
        layers.Flatten(),
        output_unit(),
    ], name="discriminator_report_v1")


def resize_channels(side: int) -> int:
    """Channels of the resize generator's block at `side` px: wide where the grid is small, narrow
    at full resolution, where a 3x3 convolution costs the most."""
    return min(256, 2048 // side)


def resize_generator(cfg: GANConfig) -> keras.Model:
    """Dense -> 4x4, then per doubling nearest-neighbour upsampling + 3x3 conv (no transposed-conv
    checkerboards), per-pixel feature normalisation (Karras et al. 2018's pixel norm, as a stock
    UnitNormalization: batch-4 BatchNorm statistics are noise, and there is nothing to average in
    the EMA), LeakyReLU; a 3x3 tanh output. At 64 px about 2/3 of the report G's multiply-adds."""
    side = _start_side(cfg, round(math.log2(cfg.image_size // 4)))
    body = [noise_projection(side * side * 256), layers.Reshape((side, side, 256)), layers.UnitNormalization(axis=-1),
            layers.LeakyReLU(0.2)]
    while side < cfg.image_size:
        side *= 2
        body += [layers.UpSampling2D(2), layers.Conv2D(resize_channels(side), 3, padding="same"),
                 layers.UnitNormalization(axis=-1), layers.LeakyReLU(0.2)]
    body.append(NarrowConv2D(1, 3, padding="same", activation="tanh"))
    return _generator(cfg, body, "generator_resize")


def sn_discriminator(cfg: GANConfig) -> keras.Model:
    """Spectrally normalised D, no Dropout, logit output: a 3x3 conv at full size, then stride-2 3x3
    convs (64, 128, 256, 256 channels) down to 4x4. Conditional: a projection discriminator (Miyato
    & Koyama 2018), the logit plus the inner product of the features with the label's embedding."""
    body = [*_seen_input(cfg), SNNarrowConv2D(32, 3, padding="same"), layers.LeakyReLU(0.2)]
    side, channels = cfg.image_size, 64
    while side > 4:
        side //= 2
        body += [SNConv2D(channels, 3, strides=2, padding="same"), layers.LeakyReLU(0.2)]
        channels = min(256, channels * 2)
    body += [*_batch_spread(cfg), layers.Flatten()]
    image = keras.Input((cfg.image_size, cfg.image_size, 1), name="image")
    if is_conditional(cfg):
        return _projection(cfg, image, body, SNDense, None, "discriminator_sn_conditional")
    x = image
    for layer in body:
        x = layer(x)
    return keras.Model(image, output_unit(SNDense, None)(x), name="discriminator_sn")


ARCHITECTURES: dict[str, Architecture] = {
    "report": Architecture(report_generator, report_discriminator,
                           "the report's final model (Yeni Model): the faithful reproduction", conditional=True),
    "report-v1": Architecture(report_v1_generator, report_v1_discriminator,
                              "the report's first model (Onceki Model), with BatchNorm in G"),
    "resize-sn": Architecture(resize_generator, sn_discriminator,
                              "upsample+conv G with pixel norm; spectrally normalised D with a logit output",
                              d_logits=True, conditional=True),
}


def build_models(cfg: GANConfig) -> tuple[keras.Model, keras.Model]:
    """(generator, discriminator) for `cfg.arch`; an unknown name lists the known ones."""
    if cfg.arch not in ARCHITECTURES:
        raise ValueError(f"arch={cfg.arch!r}; known architectures: {sorted(ARCHITECTURES)}")
    arch = ARCHITECTURES[cfg.arch]
    return arch.build_generator(cfg), arch.build_discriminator(cfg)
