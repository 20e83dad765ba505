"""The GAN training step: both models, both optimisers, the RNG and the step counter in one
checkpointable object, and the step compiled (`GANTrainer.compiled_step`).

The training images live on the device and each step draws its batch with replacement from them
(as the report sampled), so there is no per-step host-to-device copy at all; a training split over
the memory budget streams from its shard files instead (gan_lib.streaming), a batch per step. G and
D each have their own Adam, built once on their own variables, so the report's `KeyError: optimizer
cannot recognize variable` cannot happen. How the step is computed (precision, layers, XLA) is its
`Engine`, chosen per machine by gan_lib.speed.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from .augment import ADA_SPEED_IMAGES, augment_with, parse_policy
from .augment import draw as augment_draws
from .config import GANConfig
from .images import grid_labels
from .layers import synchronize_batch_norm, with_stock_layers
from .losses import LOSSES, r1_penalty
from .models import ARCHITECTURES, N_CLASSES, build_models, is_conditional


XLA_MODES = ("whole", "updates", "none")


@dataclass(frozen=True)
class Engine:
    """How the step is computed, not what it computes (gan_lib.speed chooses it per machine):
    Keras's precision policy; the CPU speed layers or the stock ones; and what XLA compiles: the
    whole step, only the weight updates (Adam and the EMA: elementwise work XLA fuses into one pass,
    while the convolutions stay with TensorFlow's oneDNN kernels), or nothing."""
    precision: str = "float32"
    speed_layers: bool = True
    xla: str = "none"

    def __post_init__(self):
        if self.xla not in XLA_MODES:
            raise ValueError(f"xla={self.xla!r}; one of {XLA_MODES}")


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
        """`strategy` (gan_lib.distribute): the models, optimisers and counters are made in its scope
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
        self.augment_p = tf.Variable(cfg.augment_p if self.augment_policy else 0.0, dtype=tf.float32, trainable=False, name="augment_p")
        self.real_accuracy = tf.Variable(0.5, dtype=tf.float32, trainable=False, name="real_accuracy")
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
        self.g_opt = self._optimizer(cfg, engine.precision, "g_adam")
        self.d_opt = self._optimizer(cfg, engine.precision, "d_adam")
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
        # The moving average of G's weights, when asked for: what samples and the saved generator use.
        self.generator_ema = None
        if cfg.ema_decay > 0:
            self.generator_ema = keras.models.clone_model(self.generator)
            self.generator_ema.set_weights(self.generator.get_weights())
        extra = {"generator_ema": self.generator_ema} if self.generator_ema is not None else {}
        # The Adams themselves, not float16's loss-scaling wrapper around them: a checkpoint then
        # restores under every precision (a run may resume on another machine). The loss scale
        # starts again from its initial value after a resume under float16.
        self.checkpoint = tf.train.Checkpoint(generator=self.generator, discriminator=self.discriminator,
                                              g_opt=_adam(self.g_opt), d_opt=_adam(self.d_opt), rng=self.rng,
                                              layer_seeds=layer_seeds, step=self.step, wall_time=self.wall_time,
                                              augment_p=self.augment_p, real_accuracy=self.real_accuracy, **extra,
                                              **({"batches": self.batches} if self.batches is not None else {}))
        self._apply_updates = tf.function(self._updates, jit_compile=True) if engine.xla == "updates" else self._updates
        # One compiled step with R1 and one without, chosen on the host: a tf.cond between them
        # inside an XLA-compiled step ran 9x slower (measured on the CPU)
        self._compiled_steps = {r1: tf.function(functools.partial(self._train_step, r1),
                                                jit_compile=engine.xla == "whole" and self.strategy is None)
                                for r1 in (False, True)}
        self._next_step = None  # the step counter, kept on the host from the first step on

    @staticmethod
    def _optimizer(cfg: GANConfig, precision: str, name: str):
        """Adam; under float16, wrapped in loss scaling (bfloat16 has float32's range and needs none)."""
        adam = keras.optimizers.Adam(cfg.learning_rate, beta_1=cfg.beta_1, name=name)
        return keras.optimizers.LossScaleOptimizer(adam, name=f"{name}_scaled") if precision == "mixed_float16" else adam

    def _update(self, tape, scaled_loss, generator: bool):
        """Apply the gradients of a loss scaled (inside the tape) by this optimiser's `scale_loss`;
        a LossScaleOptimizer unscales them, a plain Adam's scale is 1."""
        model = self.generator if generator else self.discriminator
        self._apply_updates(tape.gradient(scaled_loss, model.trainable_variables), generator)

    def _updates(self, grads, generator: bool):
        """One optimiser step of G (then its EMA) or D: the weight updates `Engine.xla` may compile."""
        model, optimizer = (self.generator, self.g_opt) if generator else (self.discriminator, self.d_opt)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        if generator and self.generator_ema is not None and self.strategy is None:  # else once, after the replicas
            self._update_ema()

    @property
    def sampling_generator(self) -> keras.Model:
        return self.generator_ema if self.generator_ema is not None else self.generator

    def _update_ema(self):
        """Move the average toward G's weights. The decay ramps up as TensorFlow's moving averages do
        (min(decay, (1 + step) / (10 + step))), so early steps are not frozen in; normalisation
        statistics are copied, not averaged (averaged from the first steps they blacken the images)."""
        step = tf.cast(self.step, tf.float32)
        decay = tf.minimum(self.cfg.ema_decay, (1.0 + step) / (10.0 + step))
        for average, live in zip(self.generator_ema.trainable_variables, self.generator.trainable_variables):
            average.assign(decay * average + (1.0 - decay) * live)
        for average, live in zip(self.generator_ema.non_trainable_variables, self.generator.non_trainable_variables):
            average.assign(live)

    def _generate(self, noise, labels):
        return self.generator([noise, labels] if self.conditional else noise, training=True)

    def _discriminate(self, images, labels, augmentation: dict):
        """D's output on the images, augmented first by `augmentation` (gan_lib.augment's draws; the
        same operations for real and generated images) if there is any."""
        if augmentation:
            images = augment_with(images, augmentation)
        return self.discriminator([images, labels] if self.conditional else images, training=True)

    def _random_labels(self, batch, n):
        """Labels for generated images, drawn from the training set's own class mix."""
        return tf.gather(self.labels, self.rng.uniform([batch], 0, n, dtype=tf.int64))

    def _probability(self, outputs):
        return tf.sigmoid(outputs) if self.d_logits else outputs

    def _adapt_augment_p(self, real_accuracy):
        """StyleGAN2-ADA's controller on D's accuracy on real images (a running mean): above the
        target D is overfitting, so augment more; below it, less. p can cross [0, 1] in
        ADA_SPEED_IMAGES images."""
        self.real_accuracy.assign(0.95 * self.real_accuracy + 0.05 * real_accuracy)
        direction = tf.sign(self.real_accuracy - self.cfg.ada_target)
        change = direction * self.cfg.batch_size / ADA_SPEED_IMAGES
        self.augment_p.assign(tf.clip_by_value(self.augment_p + change, 0.0, 1.0))

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
            out = self._replica_step(draws, r1)
        else:
            per_replica = self.strategy.run(self._replica_step, args=(draws, r1))
            out = {name: self.strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)
                   for name, value in per_replica.items()}
            if self.generator_ema is not None:  # once, on the replicas' common weights
                self._update_ema()
        if self.augment_policy and self.cfg.ada_target > 0:
            self._adapt_augment_p(out["d_acc_real"])
        self.step.assign_add(1)
        return {**out, "augment_p": tf.identity(self.augment_p)}

    def _draws(self, real=None, real_labels=None) -> dict:
        """Every random number of one step, for the whole batch, in the order one device always drew
        them (so its histories are unchanged); each replica takes its rows (`_replica_share`), so the
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
        draws["augment_real"] = augment_draws(self.rng, batch, side, self.augment_p, self.augment_policy)
        draws["augment_fake"] = augment_draws(self.rng, batch, side, self.augment_p, self.augment_policy)
        if not self.cfg.reuse_fakes:  # G's update on fresh noise
            draws["g_noise"], draws["g_labels"] = self.rng.normal([batch, self.cfg.noise_dim]), self._random_labels(batch, n)
        draws["augment_g"] = augment_draws(self.rng, batch, side, self.augment_p, self.augment_policy)
        return draws

    def _replica_share(self, draws: dict) -> dict:
        """This replica's rows of the batch's draws."""
        context = tf.distribute.get_replica_context()
        share = self.cfg.batch_size // context.num_replicas_in_sync
        start = context.replica_id_in_sync_group * share
        return tf.nest.map_structure(lambda t: t[start:start + share], draws)

    def _replica_step(self, draws: dict, r1: bool) -> dict:
        """D's update, then G's, on the batch (one device) or this replica's share of it."""
        if self.strategy is not None:
            draws = self._replica_share(draws)
        g_tape, fake = self._taped_generate(draws["noise"], draws["fake_labels"])
        d_loss, d_real, d_fake = self._train_discriminator(draws, fake, r1)
        # Train the generator through the (now updated) discriminator: on these images, or on fresh noise
        fake_labels = draws["fake_labels"]
        if not self.cfg.reuse_fakes:
            g_tape, fake = self._taped_generate(draws["g_noise"], draws["g_labels"])
            fake_labels = draws["g_labels"]
        with g_tape:
            d_gen = self._discriminate(fake, fake_labels, draws["augment_g"])
            g_loss = self.loss.g_loss(d_gen, self.d_logits)
            g_scaled = self.g_opt.scale_loss(self._replica_part(g_loss))
        self._update(g_tape, g_scaled, generator=True)
        p_real, p_fake = self._probability(d_real), self._probability(d_fake)
        return {"d_loss": d_loss, "g_loss": g_loss, "d_real": tf.reduce_mean(p_real), "d_fake": tf.reduce_mean(p_fake),
                "d_acc_real": tf.reduce_mean(tf.cast(p_real > 0.5, tf.float32)),
                "d_acc_fake": tf.reduce_mean(tf.cast(p_fake < 0.5, tf.float32))}

    def _replica_part(self, loss):
        """A replica's share of the loss whose gradient the optimiser takes: the optimisers sum the
        replicas' gradients, so each loss (a mean over its share) counts 1/replicas."""
        return loss if self.strategy is None else loss / self.strategy.num_replicas_in_sync

    def _taped_generate(self, noise, labels):
        """G's images of the noise, on a tape that G's update can continue (its forward pass then
        need not be computed again)."""
        tape = tf.GradientTape()
        with tape:
            fake = self._generate(noise, labels)
        return tape, fake

    def _train_discriminator(self, draws: dict, fake, r1: bool):
        """One update of D; with `r1`, its loss includes the R1 penalty, weighted r1_every times
        (lazy regularisation). Returns D's loss for the history (R1 at its weight per step, so the
        curve is comparable whatever r1_every) and D's outputs."""
        real = draws["real"]
        with tf.GradientTape() as tape:
            with tf.GradientTape(watch_accessed_variables=False) as input_tape:  # for R1; free when unused
                input_tape.watch(real)
                d_real = self._discriminate(real, draws["real_labels"], draws["augment_real"])
            d_fake = self._discriminate(fake, draws["fake_labels"], draws["augment_fake"])
            d_loss = self.loss.d_loss(d_real, self._with_mismatched(d_fake, draws), self.d_logits, self.cfg.real_label)
            minimised = d_loss
            if r1:
                penalty = r1_penalty(input_tape, d_real, real, self.cfg.r1_gamma, self.d_logits,
                                     self.discriminator.compute_dtype == "float16")
                d_loss += penalty
                minimised = d_loss if self.cfg.r1_every == 1 else d_loss + (self.cfg.r1_every - 1) * penalty
            d_scaled = self.d_opt.scale_loss(self._replica_part(minimised))
        self._update(tape, d_scaled, generator=False)
        return d_loss, d_real, d_fake

    def _with_mismatched(self, d_fake, draws: dict):
        """D's outputs to be called generated: on G's images and, with `mismatched_labels`, on the
        batch's real images under the other class's label (the matching-aware D of Reed et al. 2016,
        the two halves weighted equally). A real scan under the wrong label must then look fake to D,
        so D's verdict turns on the class and G must draw the class it is asked for."""
        if not (self.conditional and self.cfg.mismatched_labels):
            return d_fake
        other_class = (draws["real_labels"] + 1) % N_CLASSES
        return tf.concat([d_fake, self._discriminate(draws["real"], other_class, draws["augment_real"])], axis=0)

    def samples(self, noise: np.ndarray) -> np.ndarray:
        """Images from the sampling generator; a conditional one gets `grid_labels`."""
        inputs = [noise, grid_labels(len(noise))] if self.conditional else noise
        return np.asarray(self.sampling_generator(inputs, training=False), np.float32)
