"""The GAN training step: both models, both optimisers, the RNG and the step counter in one
checkpointable object, and the step compiled (`GANTrainer.compiled_step`).

The training images live on the device and each step draws its batch with replacement from them
(as the report sampled), so there is no per-step host-to-device copy at all; a training split over
the memory budget streams from its shard files instead (gan_lib.data.streaming), a batch per step. G and
D each have their own Adam, built once on their own variables, so the report's `KeyError: optimizer
cannot recognize variable` cannot happen. How the step is computed (precision, layers, XLA) is its
`Engine` (gan_lib.training.engine), chosen per machine by gan_lib.training.engine_choice.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from ..config import GANConfig
from ..data.images import grid_labels
from ..models.architectures import ARCHITECTURES, build_models, is_conditional
from ..models.layers import synchronize_batch_norm, with_stock_layers
from .augment import AdaController
from .augment import draw as augment_draws
from .augment import parse_policy
from .ema import WeightAverage
from .engine import Engine
from .losses import LOSSES
from .strategies import mean_over_replicas
from .updates import AdversarialUpdates


def adam(cfg: GANConfig, precision: str, name: str):
    """Adam; under float16, wrapped in loss scaling (bfloat16 has float32's range and needs none)."""
    optimizer = keras.optimizers.Adam(cfg.learning_rate, beta_1=cfg.beta_1, name=name)
    return keras.optimizers.LossScaleOptimizer(optimizer, name=f"{name}_scaled") if precision == "mixed_float16" else optimizer


def _adam(optimizer):
    """The Adam inside a LossScaleOptimizer, or the optimiser itself."""
    return getattr(optimizer, "inner_optimizer", optimizer)


@dataclass
class StepOutput:
    d_loss: float
    g_loss: float
    d_real: float  # mean probability D gives real images (sigmoid of its logit)
    d_fake: float
    d_acc_real: float  # share of real images D calls real (ADA's overfitting signal)
    d_acc_fake: float
    augment_p: float


class GANTrainer:
    """Both models, both optimisers, the RNG and the step counter, checkpointed together."""

    def __init__(self, cfg: GANConfig, images: np.ndarray | None, labels: np.ndarray | None = None,
                 engine: Engine = Engine(), strategy: tf.distribute.Strategy | None = None,
                 stream: tf.data.Dataset | None = None):
        """`strategy` (gan_lib.training.strategies): the models, optimisers and counters are made in its scope
        and each step runs on its replicas; None: one device. `stream`: batches of (images, labels)
        to train on instead of `images` (None then), with every training label in `labels`."""
        if cfg.loss not in LOSSES:
            raise ValueError(f"loss={cfg.loss!r}; known losses: {sorted(LOSSES)}")
        if strategy is not None and engine.xla != "none" and not isinstance(strategy, tf.distribute.TPUStrategy):
            raise ValueError(f"xla={engine.xla!r} under {type(strategy).__name__}: the optimisers' all-reduce runs "
                             "outside XLA here; use xla='off' (a TPU compiles everything anyway)")
        self.strategy = strategy
        # The loop's state, made outside any strategy's scope: one copy, on the host. The RNG's draws
        # for a batch are split between replicas; ADA's p and D's running accuracy on reals come
        # from the whole batch.
        self.augment_policy = parse_policy(cfg.augment)
        self.rng = tf.random.Generator.from_seed(cfg.seed)
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.wall_time = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="wall_time_s")
        self.ada = AdaController(self.augment_policy, cfg.augment_p, cfg.ada_target, cfg.batch_size)
        self.batches = iter(stream) if stream is not None else None
        # Keras reads the global policy when a layer is made: the trainer's models take the engine's,
        # and the policy goes back after, so models made later (KID features, the classifier) keep theirs.
        previous = keras.mixed_precision.global_policy()
        keras.mixed_precision.set_global_policy(engine.precision)
        try:
            with strategy.scope() if strategy is not None else contextlib.nullcontext():
                self._build(cfg, images, labels, engine)
        finally:
            keras.mixed_precision.set_global_policy(previous)

    def _build(self, cfg: GANConfig, images: np.ndarray, labels: np.ndarray | None, engine: Engine):
        keras.utils.set_random_seed(cfg.seed)  # weight initialisation and Dropout
        self.cfg = cfg
        self.loss = LOSSES[cfg.loss]
        self.generator, self.discriminator = build_models(cfg)  # an unknown arch raises here
        if not engine.speed_layers:
            self.generator, self.discriminator = with_stock_layers(self.generator), with_stock_layers(self.discriminator)
        if self.strategy is not None and self.strategy.num_replicas_in_sync > 1:
            # the report's G normalises over its batch of 4: split, each replica would see 2
            synchronize_batch_norm(self.generator)
            synchronize_batch_norm(self.discriminator)
        self.d_logits = ARCHITECTURES[cfg.arch].d_logits
        if cfg.loss == "hinge" and not self.d_logits:
            raise ValueError(f"loss='hinge' needs a discriminator that outputs logits; arch={cfg.arch!r} "
                             "ends in a sigmoid. Use loss='bce'.")
        self.engine = engine
        self.g_opt = adam(cfg, engine.precision, "g_adam")
        self.d_opt = adam(cfg, engine.precision, "d_adam")
        self.g_opt.build(self.generator.trainable_variables)
        self.d_opt.build(self.discriminator.trainable_variables)
        self.images = tf.constant(images, dtype=tf.float32) if self.batches is None else None
        self.conditional = is_conditional(cfg)
        if (self.conditional or self.batches is not None) and labels is None:
            raise ValueError(f"arch={cfg.arch!r} with classes={cfg.classes!r}, or streamed images: pass the labels")
        count = len(images) if labels is None else len(labels)
        self.labels = tf.constant(labels if self.conditional else np.zeros(count), dtype=tf.int32)
        # Dropout's seed state is not among the model's weights: save it so a resume repeats no draw.
        layer_seeds = [layer.seed_generator.state for model in (self.generator, self.discriminator)
                       for layer in model.layers if hasattr(layer, "seed_generator")]
        self.ema = WeightAverage(self.generator, cfg.ema_decay) if cfg.ema_decay > 0 else None
        extra = {"generator_ema": self.ema.model} if self.ema is not None else {}
        # The Adams themselves, not float16's loss-scaling wrapper around them: a checkpoint then
        # restores under every precision (a run may resume on another machine). The loss scale
        # starts again from its initial value after a resume under float16.
        self.checkpoint = tf.train.Checkpoint(generator=self.generator, discriminator=self.discriminator,
                                              g_opt=_adam(self.g_opt), d_opt=_adam(self.d_opt), rng=self.rng,
                                              layer_seeds=layer_seeds, step=self.step, wall_time=self.wall_time,
                                              augment_p=self.ada.p, real_accuracy=self.ada.real_accuracy, **extra,
                                              **({"batches": self.batches} if self.batches is not None else {}))
        self.updates = AdversarialUpdates(cfg, self.generator, self.discriminator, self.g_opt, self.d_opt, self.loss,
                                          self.d_logits, self.conditional, self.strategy, self.ema, self.step,
                                          compile_updates=engine.xla == "updates")
        # One compiled step with R1 and one without, chosen on the host: a tf.cond between them
        # inside an XLA-compiled step ran 9x slower (measured on the CPU). Every branch in the step
        # is on settings, none on a tensor, so AutoGraph has nothing to convert: without it the
        # step traces in less time (a tensor used as a Python bool would be an error at tracing).
        self._compiled_steps = {r1: tf.function(functools.partial(self._train_step, r1), autograph=False,
                                                jit_compile=engine.xla == "whole" and self.strategy is None)
                                for r1 in (False, True)}
        self._next_step = None  # the step counter, kept on the host from the first step on

    @property
    def sampling_generator(self) -> keras.Model:
        """G's moving average if there is one, else G: what samples and the saved generator use."""
        return self.ema.model if self.ema is not None else self.generator

    def _random_labels(self, batch, n):
        """Labels for generated images, drawn from the training set's own class mix."""
        return tf.gather(self.labels, self.rng.uniform([batch], 0, n, dtype=tf.int64))

    def compiled_step(self) -> dict:
        """One training step, compiled; R1 on the steps `r1_every` divides. The step counter is read
        from the device once, at the first step (after any checkpoint restore), and counted on the
        host from then on, so choosing the step never waits for the previous one."""
        if self._next_step is None:
            self._next_step = int(self.step)
        r1 = self.cfg.r1_gamma > 0 and self._next_step % self.cfg.r1_every == 0
        self._next_step += 1
        return self._compiled_steps[r1](*(next(self.batches) if self.batches is not None else ()))

    def _train_step(self, r1: bool, real=None, real_labels=None):
        """One step (on `real` images, if streamed): the batch's random numbers drawn whole, the
        updates on one device or on each replica's share (its losses averaged over the global
        batch), then ADA and the counter."""
        draws = self._draws(real, real_labels)
        if self.strategy is None:
            out = self.updates(draws, r1)
        else:
            out = mean_over_replicas(self.strategy, self.strategy.run(self.updates, args=(draws, r1)))
            if self.ema is not None:  # once, on the replicas' common weights
                self.ema.update(self.step)
        if self.ada.adaptive:
            self.ada.update(out["d_acc_real"])
        self.step.assign_add(1)
        return {**out, "augment_p": tf.identity(self.ada.p)}

    def _draws(self, real=None, real_labels=None) -> dict:
        """Every random number of one step, for the whole batch, in the order one device always drew
        them (so its histories are unchanged); each replica takes its rows (`replica_share`), so the
        replicas draw different images and noise, and together exactly what one device would. The
        real images are drawn with replacement, unless streamed ones are given."""
        batch, n, side = self.cfg.batch_size, tf.shape(self.labels, out_type=tf.int64)[0], self.cfg.image_size
        if real is None:
            index = self.rng.uniform([batch], 0, n, dtype=tf.int64)
            real, real_labels = tf.gather(self.images, index), tf.gather(self.labels, index)
        if self.cfg.mirror:  # drawn only when asked for, so runs without it keep their histories
            flipped = self.rng.uniform([batch, 1, 1, 1]) < 0.5
            real = tf.where(flipped, tf.reverse(real, axis=[2]), real)
        draws = {"real": real, "real_labels": real_labels}
        draws["noise"], draws["fake_labels"] = self.rng.normal([batch, self.cfg.noise_dim]), self._random_labels(batch, n)
        draws["augment_real"] = augment_draws(self.rng, batch, side, self.ada.p, self.augment_policy)
        draws["augment_fake"] = augment_draws(self.rng, batch, side, self.ada.p, self.augment_policy)
        if not self.cfg.reuse_fakes:  # G's update on fresh noise
            draws["g_noise"], draws["g_labels"] = self.rng.normal([batch, self.cfg.noise_dim]), self._random_labels(batch, n)
        draws["augment_g"] = augment_draws(self.rng, batch, side, self.ada.p, self.augment_policy)
        return draws

    def samples(self, noise: np.ndarray) -> np.ndarray:
        """Images from the sampling generator; a conditional one gets `grid_labels`."""
        inputs = [noise, grid_labels(len(noise), len(self.cfg.class_names()))] if self.conditional else noise
        return np.asarray(self.sampling_generator(inputs, training=False), np.float32)
