"""What one training step computes, given its random draws: D's update, then G's, on one device's
batch or on one replica's share of it. The losses come from `losses`, the augmentation from
`augment`; `step.GANTrainer` draws the numbers, compiles this and keeps the state."""

from __future__ import annotations

import keras
import tensorflow as tf

from ..config import GANConfig
from .augment import augment_with
from .ema import WeightAverage
from .losses import Loss, mismatched_labels, r1_penalty, with_lazy_r1, with_mismatched
from .strategies import replica_part, replica_share


class AdversarialUpdates:
    """D's update, then G's, each with its own Adam."""

    def __init__(self, cfg: GANConfig, generator: keras.Model, discriminator: keras.Model, g_opt, d_opt, loss: Loss,
                 d_logits: bool, conditional: bool, strategy: tf.distribute.Strategy | None,
                 ema: WeightAverage | None, step: tf.Variable, compile_updates: bool):
        """`compile_updates`: XLA compiles the weight updates (`Engine.xla == "updates"`). `step`:
        the trainer's counter, which the EMA's decay ramps on."""
        self.cfg, self.generator, self.discriminator, self.g_opt, self.d_opt = cfg, generator, discriminator, g_opt, d_opt
        self.loss, self.d_logits, self.conditional, self.strategy, self.ema, self.step = (
            loss, d_logits, conditional, strategy, ema, step)
        self._apply_updates = (tf.function(self._updates, jit_compile=True, autograph=False) if compile_updates
                               else self._updates)

    def __call__(self, draws: dict, r1: bool) -> dict:
        """D's update, then G's, on the batch (one device) or this replica's share of it."""
        if self.strategy is not None:
            draws = replica_share(draws, self.cfg.batch_size)
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
            g_scaled = self.g_opt.scale_loss(replica_part(g_loss, self.strategy))
        self._update(g_tape, g_scaled, generator=True)
        p_real, p_fake = self._probability(d_real), self._probability(d_fake)
        return {"d_loss": d_loss, "g_loss": g_loss, "d_real": tf.reduce_mean(p_real), "d_fake": tf.reduce_mean(p_fake),
                "d_acc_real": tf.reduce_mean(tf.cast(p_real > 0.5, tf.float32)),
                "d_acc_fake": tf.reduce_mean(tf.cast(p_fake < 0.5, tf.float32))}

    def _train_discriminator(self, draws: dict, fake, r1: bool):
        """One update of D (with `r1`, its loss includes the R1 penalty: `with_lazy_r1`). Returns
        D's loss for the history and D's outputs."""
        real = draws["real"]
        with tf.GradientTape() as tape:
            with tf.GradientTape(watch_accessed_variables=False) as input_tape:  # for R1; free when unused
                input_tape.watch(real)
                d_real = self._discriminate(real, draws["real_labels"], draws["augment_real"])
            d_fake = self._discriminate(fake, draws["fake_labels"], draws["augment_fake"])
            d_mismatched = None
            if self.conditional and self.cfg.mismatched_labels:
                wrong = mismatched_labels(draws["real_labels"], len(self.cfg.class_names()))
                d_mismatched = self._discriminate(real, wrong, draws["augment_real"])
            d_loss = self.loss.d_loss(d_real, with_mismatched(d_fake, d_mismatched), self.d_logits, self.cfg.real_label)
            minimised = d_loss
            if r1:
                penalty = r1_penalty(input_tape, d_real, real, self.cfg.r1_gamma, self.d_logits,
                                     self.discriminator.compute_dtype == "float16")
                d_loss, minimised = with_lazy_r1(d_loss, penalty, self.cfg.r1_every)
            d_scaled = self.d_opt.scale_loss(replica_part(minimised, self.strategy))
        self._update(tape, d_scaled, generator=False)
        return d_loss, d_real, d_fake

    def _taped_generate(self, noise, labels):
        """G's images of the noise, on a tape that G's update can continue (its forward pass then
        need not be computed again)."""
        tape = tf.GradientTape()
        with tape:
            fake = self.generator([noise, labels] if self.conditional else noise, training=True)
        return tape, fake

    def _discriminate(self, images, labels, augmentation: dict):
        """D's output on the images, augmented first by `augmentation` (`augment`'s draws; the same
        operations for real and generated images) if there is any."""
        if augmentation:
            images = augment_with(images, augmentation)
        return self.discriminator([images, labels] if self.conditional else images, training=True)

    def _probability(self, outputs):
        return tf.sigmoid(outputs) if self.d_logits else outputs

    def _update(self, tape, scaled_loss, generator: bool):
        """Apply the gradients of a loss scaled (inside the tape) by this optimiser's `scale_loss`;
        a LossScaleOptimizer unscales them, a plain Adam's scale is 1."""
        model = self.generator if generator else self.discriminator
        self._apply_updates(tape.gradient(scaled_loss, model.trainable_variables), generator)

    def _updates(self, grads, generator: bool):
        """One optimiser step of G (then its EMA) or D: the weight updates `Engine.xla` may compile."""
        model, optimizer = (self.generator, self.g_opt) if generator else (self.discriminator, self.d_opt)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        if generator and self.ema is not None and self.strategy is None:  # else once, after the replicas
            self.ema.update(self.step)
