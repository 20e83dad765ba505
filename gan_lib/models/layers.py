"""Layers the architectures are built from beyond stock Keras: the CPU speed layers
(`PhaseConv2DTranspose`, `PhaseGradConv2D`, `NarrowConv2D`: the stock layers' function and weights,
computed faster on a CPU), spectral normalisation, and `MinibatchStddev`. `with_stock_layers` swaps
the speed layers back, for saved models that load without gan_lib and for devices where the speed
layers were not measured faster. `MinibatchStddev`, `ReplicaDropout` and `synchronize_batch_norm`
compute over the global batch when a tf.distribute strategy splits it between replicas, so a model
computes the same function on one device or several.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers


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
        estimate = tf.cast(tf.convert_to_tensor(self.singular_vector), tf.float32)  # autocast under float16
        v = tf.math.l2_normalize(tf.matmul(estimate, matrix, transpose_b=True))
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
        batch = tf.cast(x, tf.float32)
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:  # the spread of the global batch
            batch = context.all_gather(batch, axis=0)
        # variance + a small constant: the square root's gradient is infinite at 0 (a batch of copies)
        variance = tf.math.reduce_variance(batch, axis=0)
        spread = tf.reduce_mean(tf.sqrt(variance + 1e-8))
        return tf.concat([x, tf.ones_like(x[..., :1]) * tf.cast(spread, x.dtype)], axis=-1)


class MirrorDifference(layers.Layer):
    """Appends each image minus its left-right mirror image. A head and its mirror image nearly
    match, except where a tumour or an off-centre position breaks the symmetry; the report's D sees
    17 px of a 64-px picture through its convolutions, so without this channel it cannot compare a
    head's two halves. Without weights, so checkpoints of other runs are unchanged."""

    def call(self, x):
        return tf.concat([x, x - tf.reverse(x, axis=[2])], axis=-1)


class ReplicaDropout(layers.Dropout):
    """Dropout that drops, split over replicas (gan_lib.training.strategies), what one device would drop:
    each replica draws the mask of the global batch and keeps its own rows. Keras's Dropout would
    give every replica the same mask (one seed), tying images across replicas together."""

    def call(self, inputs, training=False):
        context = tf.distribute.get_replica_context()
        if not training or self.rate == 0 or context is None or context.num_replicas_in_sync == 1:
            return super().call(inputs, training=training)
        share = tf.shape(inputs)[0]
        whole = tf.concat([[share * context.num_replicas_in_sync], tf.shape(inputs)[1:]], axis=0)
        mask = keras.random.dropout(tf.ones(whole, inputs.dtype), self.rate, seed=self.seed_generator)
        start = context.replica_id_in_sync_group * share
        return inputs * mask[start:start + share]


def synchronize_batch_norm(model: keras.Model) -> None:
    """BatchNormalization over the global batch, not each replica's share (Keras's `synchronized`
    statistics), so splitting a batch between replicas does not change what the model computes."""
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.synchronized = True


STOCK_LAYERS = {PhaseConv2DTranspose: layers.Conv2DTranspose, PhaseGradConv2D: layers.Conv2D,
                NarrowConv2D: layers.Conv2D}


def with_stock_layers(model: keras.Model, dtype: str | None = None) -> keras.Model:
    """A copy with stock Keras layers only (same weights): what the report ran, and loadable
    without this package; computing in `dtype` (a Keras policy name) if given, e.g. a float32 copy
    of a generator trained in mixed precision, to save."""
    def stock(layer):
        config = layer.get_config() if dtype is None else {**layer.get_config(), "dtype": dtype}
        return STOCK_LAYERS.get(type(layer), type(layer)).from_config(config)

    copy = keras.models.clone_model(model, clone_function=stock)
    copy.set_weights(model.get_weights())
    for original, clone in zip(model.layers, copy.layers):  # Dropout draws the same masks in both
        if hasattr(original, "seed_generator"):
            clone.seed_generator.state.assign(original.seed_generator.state)
    return copy
