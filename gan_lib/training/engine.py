"""How the training step is computed on a machine, as opposed to what it computes."""

from __future__ import annotations

from dataclasses import dataclass

XLA_MODES = ("whole", "updates", "none")


@dataclass(frozen=True)
class Engine:
    """How the step is computed, not what it computes (gan_lib.training.engine_choice chooses it per machine):
    Keras's precision policy; the CPU speed layers or the stock ones; and what XLA compiles: the
    whole step, only the weight updates (Adam and the EMA: elementwise work XLA fuses into one pass,
    while the convolutions stay with TensorFlow's oneDNN kernels), or nothing."""
    precision: str = "float32"
    speed_layers: bool = True
    xla: str = "none"

    def __post_init__(self):
        if self.xla not in XLA_MODES:
            raise ValueError(f"xla={self.xla!r}; one of {XLA_MODES}")
