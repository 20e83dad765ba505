"""Generator and discriminator architectures, chosen by name from a registry.

`report` and `report-v1` are the student report's two models, layer for layer (see
`../shared/SEED_NOTES.md`; their transposed convolutions are computed by `PhaseConv2DTranspose`,
the same layer made faster), at 128x128; at other sizes the generator starts from a proportionally
smaller grid so the same layers produce `image_size`. Add a preset by registering a pair of
builders in `ARCHITECTURES`; notebooks never branch on the name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import keras
import tensorflow as tf
from keras import layers

from .config import GANConfig


def _phase_taps(kernel: int, pad_before: int, phase: int) -> tuple[int, list[int]]:
    """Along one axis of a stride-2 convolution's input gradient, the input positions 2m+phase
    receive dy[m + d] * w[k]: the lowest offset d and the taps k ordered by increasing d."""
    taps = [k for k in range(kernel) if (k - pad_before - phase) % 2 == 0]
    offsets = [(phase + pad_before - k) // 2 for k in taps]
    order = sorted(range(len(taps)), key=offsets.__getitem__)
    return min(offsets), [taps[i] for i in order]


def _stride2_input_gradient(dy, kernel, input_hw: tuple[int, int], pad_before: tuple[int, int]):
    """The input gradient of a stride-2 convolution as four stride-1 convolutions, one per input
    phase, interleaved with depth_to_space: no multiplications by the zeros a dilated gradient has."""
    kernel_t = tf.transpose(kernel, [0, 1, 3, 2])  # (kh, kw, out, in): dy's channels in
    margin = max(kernel.shape[0], kernel.shape[1])
    dy_padded = tf.pad(dy, [[0, 0], [margin, margin], [margin, margin], [0, 0]])
    out_h, out_w = input_hw[0] // 2, input_hw[1] // 2
    phases = []
    for a in range(2):
        row0, rows = _phase_taps(kernel.shape[0], pad_before[0], a)
        for b in range(2):
            col0, cols = _phase_taps(kernel.shape[1], pad_before[1], b)
            sub = tf.stack([tf.stack([kernel_t[r, c] for c in cols]) for r in rows])
            window = dy_padded[:, margin + row0:margin + row0 + out_h + len(rows) - 1,
                               margin + col0:margin + col0 + out_w + len(cols) - 1]
            phases.append(tf.nn.conv2d(window, sub, 1, "VALID"))
    return tf.nn.depth_to_space(tf.concat(phases, axis=-1), 2)


class PhaseConv2DTranspose(layers.Conv2DTranspose):
    """Conv2DTranspose that computes a 4x4, stride-2, "same" layer as four 2x2 convolutions, one per
    output phase, interleaved with depth_to_space: the same function of the same weights, without
    the multiplications by inserted zeros that XLA's CPU kernel performs (measured here: forward
    2.2x, forward+backward 1.7x faster). Other settings fall back to the stock computation.
    `with_stock_layers` swaps it back to the stock layer, so saved models need no gan_lib.

    A transposed convolution is the input gradient of the stride-2 convolution with the same kernel,
    so it is `_stride2_input_gradient`, the computation `PhaseGradConv2D` uses for D.
    """

    def _is_phase_case(self) -> bool:
        return (tuple(self.kernel_size) == (4, 4) and tuple(self.strides) == (2, 2) and self.padding == "same"
                and self.data_format == "channels_last" and tuple(self.dilation_rate) == (1, 1)
                and self.output_padding is None)

    def call(self, inputs):
        if not self._is_phase_case():
            return super().call(inputs)
        kernel = tf.convert_to_tensor(self.kernel)  # (4, 4, filters, in): that stride-2 convolution's kernel
        h, w = inputs.shape[1:3]
        outputs = _stride2_input_gradient(inputs, kernel, (2 * h, 2 * w), pad_before=(1, 1))
        if self.use_bias:
            outputs = outputs + tf.convert_to_tensor(self.bias)
        return self.activation(outputs) if self.activation is not None else outputs


class PhaseGradConv2D(layers.Conv2D):
    """Conv2D whose stride-2, "same" case computes its input gradient per input phase
    (`_stride2_input_gradient`) instead of XLA's dilated-gradient convolution: the same function,
    weights and gradients, measured here 1.4-1.7x faster forward+backward on the report's strided
    D layers. The forward pass and the kernel gradient are TensorFlow's own. Other settings, and
    odd input sizes, use the stock computation.
    """

    def _is_phase_case(self, inputs) -> bool:
        return (tuple(self.strides) == (2, 2) and self.padding == "same" and self.data_format == "channels_last"
                and tuple(self.dilation_rate) == (1, 1) and self.groups == 1
                and inputs.shape[1] is not None and inputs.shape[2] is not None
                and inputs.shape[1] % 2 == 0 and inputs.shape[2] % 2 == 0)

    def convolution_op(self, inputs, kernel):
        if not self._is_phase_case(inputs):
            return super().convolution_op(inputs, kernel)
        input_hw = (inputs.shape[1], inputs.shape[2])
        pad_before = tuple(max(k - 2, 0) // 2 for k in self.kernel_size)  # "same" on even sizes

        @tf.custom_gradient
        def conv(x, w):
            def grad(dy):
                dw = tf.raw_ops.Conv2DBackpropFilter(input=x, filter_sizes=tf.shape(w), out_backprop=dy,
                                                     strides=[1, 2, 2, 1], padding="SAME")
                return _stride2_input_gradient(dy, w, input_hw, pad_before), dw
            return tf.nn.conv2d(x, w, 2, "SAME"), grad

        return conv(inputs, tf.convert_to_tensor(kernel))


def _same_pads(kernel: int) -> tuple[int, int]:
    """TensorFlow's "same" padding of a stride-1 convolution: (before, after)."""
    return (kernel - 1) // 2, kernel - 1 - (kernel - 1) // 2


def _window_taps(x, kernel_hw: tuple[int, int], transpose: bool = False):
    """(B, H, W, C) -> (B, H, W, kh*kw*C): tap (a, b) holds x at the window offset (a, b) of a
    stride-1 "same" convolution, or, with `transpose`, at the mirrored offset that spreads an output
    gradient back over the window."""
    (kh, kw), (h, w) = kernel_hw, x.shape[1:3]
    (top, bottom), (left, right) = _same_pads(kh), _same_pads(kw)
    if transpose:
        padded = tf.pad(x, [[0, 0], [bottom, top], [right, left], [0, 0]])
        starts = [(kh - 1 - a, kw - 1 - b) for a in range(kh) for b in range(kw)]
    else:
        padded = tf.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]])
        starts = [(a, b) for a in range(kh) for b in range(kw)]
    return tf.concat([padded[:, r:r + h, c:c + w, :] for r, c in starts], axis=-1)


class NarrowConv2D(layers.Conv2D):
    """Conv2D for a stride-1, "same" layer with one or few channels on one side (the report's D
    input layer, 1 -> 64; its G output layer, 128 -> 1), computed as one matrix product plus the
    kernel's shifted windows of the narrow side, where XLA's CPU convolution runs at a few GFLOP/s:
    measured here forward+backward 1.9x (D's first layer) and 1.8x (G's last) faster. The same
    function and gradients; other settings use the stock computation.
    """

    NARROW_CHANNELS = 64  # kernel taps x narrow-side channels up to which the rewrite pays

    def _route(self, inputs) -> str:
        if not (tuple(self.strides) == (1, 1) and self.padding == "same" and self.data_format == "channels_last"
                and tuple(self.dilation_rate) == (1, 1) and self.groups == 1 and None not in inputs.shape[1:3]):
            return "stock"
        taps = self.kernel_size[0] * self.kernel_size[1]
        narrow_in, narrow_out = taps * inputs.shape[-1], taps * self.filters
        if min(narrow_in, narrow_out) > self.NARROW_CHANNELS:
            return "stock"
        return "windows_of_input" if narrow_in <= narrow_out else "windows_of_output"

    def convolution_op(self, inputs, kernel):
        route = self._route(inputs)
        if route == "stock":
            return super().convolution_op(inputs, kernel)
        kernel = tf.convert_to_tensor(kernel)
        kh, kw, c_in, c_out = kernel.shape
        if route == "windows_of_input":  # few input channels: gather the windows, then one product
            return tf.einsum("bhwk,ko->bhwo", _window_taps(inputs, (kh, kw)), tf.reshape(kernel, [kh * kw * c_in, c_out]))

        @tf.custom_gradient
        def conv(x, k):  # few output channels: one product per tap first, then sum the shifted taps
            per_tap = tf.reshape(tf.transpose(k, [2, 0, 1, 3]), [c_in, kh * kw * c_out])
            z = tf.einsum("bhwc,co->bhwo", x, per_tap)
            (top, bottom), (left, right) = _same_pads(kh), _same_pads(kw)
            z = tf.pad(z, [[0, 0], [top, bottom], [left, right], [0, 0]])
            h, w = x.shape[1:3]
            out = tf.add_n([z[:, a:a + h, b:b + w, (a * kw + b) * c_out:(a * kw + b + 1) * c_out]
                            for a in range(kh) for b in range(kw)])

            def grad(dy):
                dz = _window_taps(dy, (kh, kw), transpose=True)
                d_per_tap = tf.einsum("bhwc,bhwo->co", x, dz)
                return (tf.einsum("bhwo,co->bhwc", dz, per_tap),
                        tf.transpose(tf.reshape(d_per_tap, [c_in, kh, kw, c_out]), [1, 2, 0, 3]))
            return out, grad

        return conv(inputs, kernel)


class SpectralNorm:
    """Mixin dividing a layer's kernel by its largest singular value (Miyato et al. 2018), estimated
    by one power iteration per call from a persistent vector: D becomes 1-Lipschitz per layer, so it
    cannot sharpen without bound on ~141 images. Gradients flow through the division; the vector is
    a non-trainable weight, updated on every call (D is only ever called in training)."""

    def build(self, input_shape):
        super().build(input_shape)
        self.singular_vector = self.add_weight(shape=(1, self.kernel.shape[-1]), trainable=False, name="singular_vector",
                                               initializer=keras.initializers.RandomNormal(seed=0))

    def normalised(self, kernel):
        kernel = tf.convert_to_tensor(kernel)
        matrix = tf.reshape(tf.cast(kernel, tf.float32), [-1, kernel.shape[-1]])
        v = tf.math.l2_normalize(tf.matmul(self.singular_vector, matrix, transpose_b=True))
        u = tf.stop_gradient(tf.math.l2_normalize(tf.matmul(v, matrix)))
        self.singular_vector.assign(u)
        sigma = tf.reduce_sum(tf.matmul(tf.stop_gradient(v), matrix) * u)
        return tf.cast(tf.cast(kernel, tf.float32) / sigma, kernel.dtype)


class SNConv2D(SpectralNorm, PhaseGradConv2D):
    def convolution_op(self, inputs, kernel):
        return super().convolution_op(inputs, self.normalised(kernel))


class SNNarrowConv2D(SpectralNorm, NarrowConv2D):
    def convolution_op(self, inputs, kernel):
        return super().convolution_op(inputs, self.normalised(kernel))


class SNDense(SpectralNorm, layers.Dense):
    def call(self, inputs):
        outputs = tf.matmul(inputs, self.normalised(self.kernel))
        return outputs + self.bias if self.use_bias else outputs


class MinibatchStddev(layers.Layer):
    """Appends one channel holding the batch's mean standard deviation over images (Karras et al.
    2018): a batch of near-identical images stands out to D whatever each image looks like, which
    is the signal a plain D lacks when G collapses. Without weights, so checkpoints are unchanged."""

    def call(self, x):
        # variance + a small constant: the square root's gradient is infinite at 0 (a batch of copies)
        variance = tf.math.reduce_variance(tf.cast(x, tf.float32), axis=0)
        spread = tf.reduce_mean(tf.sqrt(variance + 1e-8))
        return tf.concat([x, tf.ones_like(x[..., :1]) * tf.cast(spread, x.dtype)], axis=-1)


def _batch_spread(cfg: GANConfig) -> list:
    """The layers D puts before its output head: MinibatchStddev if the config asks for it."""
    return [MinibatchStddev()] if cfg.minibatch_stddev else []


STOCK_LAYERS = {PhaseConv2DTranspose: layers.Conv2DTranspose, PhaseGradConv2D: layers.Conv2D,
                NarrowConv2D: layers.Conv2D}


def with_stock_layers(model: keras.Model) -> keras.Model:
    """A copy with stock Keras layers only (same weights): what the report ran, and loadable
    without this package."""
    def stock(layer):
        return STOCK_LAYERS.get(type(layer), type(layer)).from_config(layer.get_config())

    copy = keras.models.clone_model(model, clone_function=stock)
    copy.set_weights(model.get_weights())
    return copy


@dataclass(frozen=True)
class Architecture:
    build_generator: Callable[[GANConfig], keras.Model]
    build_discriminator: Callable[[GANConfig], keras.Model]
    description: str
    d_logits: bool = False  # D ends in a logit (any loss) rather than the report's sigmoid (bce only)
    conditional: bool = False  # with classes="both", G and D take the class label as a second input


N_CLASSES = 2  # no tumour (0), tumour (1)
LABEL_EMBEDDING = 16  # length of the label's learned embedding, appended to G's noise


def is_conditional(cfg: GANConfig) -> bool:
    """Whether this run's models take labels: a conditional architecture trained on both classes."""
    return cfg.classes == "both" and cfg.arch in ARCHITECTURES and ARCHITECTURES[cfg.arch].conditional


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
        PhaseConv2DTranspose(128, (4, 4), strides=2, padding="same"),
        layers.LeakyReLU(0.2),
        PhaseConv2DTranspose(128, (4, 4), strides=2, padding="same"),
        layers.LeakyReLU(0.2),
        NarrowConv2D(1, (4, 4), padding="same", activation="tanh"),
    ], name="generator_report")


def report_discriminator(cfg: GANConfig) -> keras.Model:
    """The report's final D: four 3x3 convs (three strided) with LeakyReLU, Dropout(0.4), sigmoid."""
    return keras.Sequential([
        keras.Input((cfg.image_size, cfg.image_size, 1)),
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
        PhaseGradConv2D(64, 4, strides=2, padding="same"),
        layers.LeakyReLU(0.2),
        PhaseGradConv2D(128, 4, strides=2, padding="same"),
        layers.LeakyReLU(0.2),
        *_batch_spread(cfg),
        layers.Flatten(),
        layers.Dense(1, activation="sigmoid"),
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
    body = [layers.Dense(side * side * 256), layers.Reshape((side, side, 256)), layers.UnitNormalization(axis=-1),
            layers.LeakyReLU(0.2)]
    while side < cfg.image_size:
        side *= 2
        body += [layers.UpSampling2D(2), layers.Conv2D(resize_channels(side), 3, padding="same"),
                 layers.UnitNormalization(axis=-1), layers.LeakyReLU(0.2)]
    body.append(NarrowConv2D(1, 3, padding="same", activation="tanh"))
    noise = keras.Input((cfg.noise_dim,), name="noise")
    if not is_conditional(cfg):
        return keras.Sequential([noise, *body], name="generator_resize")
    label = keras.Input((), dtype="int32", name="label")
    x = layers.Concatenate()([noise, layers.Embedding(N_CLASSES, LABEL_EMBEDDING)(label)])
    for layer in body:
        x = layer(x)
    return keras.Model([noise, label], x, name="generator_resize_conditional")


def sn_discriminator(cfg: GANConfig) -> keras.Model:
    """Spectrally normalised D, no Dropout, logit output: a 3x3 conv at full size, then stride-2 3x3
    convs (64, 128, 256, 256 channels) down to 4x4. Conditional: a projection discriminator (Miyato
    & Koyama 2018), the logit plus the inner product of the features with the label's embedding."""
    image = keras.Input((cfg.image_size, cfg.image_size, 1), name="image")
    x = layers.LeakyReLU(0.2)(SNNarrowConv2D(32, 3, padding="same")(image))
    side, channels = cfg.image_size, 64
    while side > 4:
        side //= 2
        x = layers.LeakyReLU(0.2)(SNConv2D(channels, 3, strides=2, padding="same")(x))
        channels = min(256, channels * 2)
    for layer in _batch_spread(cfg):
        x = layer(x)
    features = layers.Flatten()(x)
    logit = SNDense(1)(features)
    if not is_conditional(cfg):
        return keras.Model(image, logit, name="discriminator_sn")
    label = keras.Input((), dtype="int32", name="label")
    one_hot = layers.CategoryEncoding(N_CLASSES, output_mode="one_hot")(label)
    embedding = SNDense(features.shape[-1], use_bias=False)(one_hot)
    logit = layers.Add()([logit, layers.Dot(axes=1)([embedding, features])])
    return keras.Model([image, label], logit, name="discriminator_sn_conditional")


ARCHITECTURES: dict[str, Architecture] = {
    "report": Architecture(report_generator, report_discriminator,
                           "the report's final model (Yeni Model): the faithful reproduction"),
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
