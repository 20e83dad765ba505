"""A moving average of the generator's weights (G's EMA): what samples and the saved generator use
when `ema_decay` > 0, since the average of G's recent weights draws steadier images than G itself."""

from __future__ import annotations

import keras
import tensorflow as tf


class WeightAverage:
    """A copy of `model` whose weights follow the model's as a moving average."""

    def __init__(self, model: keras.Model, decay: float):
        self.live = model
        self.decay = decay
        self.model = keras.models.clone_model(model)
        self.model.set_weights(model.get_weights())

    def update(self, step) -> None:
        """Move the average toward the live weights. The decay ramps up as TensorFlow's moving
        averages do (min(decay, (1 + step) / (10 + step))), so early steps are not frozen in;
        normalisation statistics are copied, not averaged (averaged from the first steps they
        blacken the images)."""
        step = tf.cast(step, tf.float32)
        decay = tf.minimum(self.decay, (1.0 + step) / (10.0 + step))
        for average, live in zip(self.model.trainable_variables, self.live.trainable_variables):
            average.assign(decay * average + (1.0 - decay) * live)
        for average, live in zip(self.model.non_trainable_variables, self.live.non_trainable_variables):
            average.assign(live)
