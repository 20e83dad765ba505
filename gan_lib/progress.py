"""What a person watching a long run sees in the notebook or terminal: a progress bar that works
in Jupyter, Colab and under `make`, messages printed above it, and the run's speed and ETA.
"""

from __future__ import annotations

import os
import sys
import time

from tqdm.auto import tqdm

from .config import HEADLESS_ENV

PACE_STEPS = 20  # steps timed after compilation for the speed and ETA line


def progress_bar(**kwargs):
    """A live bar in Jupyter and Colab; under `make` (papermill) a plain text bar in the log,
    refreshed every 20 s, since papermill does not relay notebook widgets to the terminal."""
    if os.environ.get(HEADLESS_ENV):
        from tqdm import tqdm as text_tqdm

        return text_tqdm(file=sys.stdout, mininterval=20, ascii=True, ncols=100, **kwargs)
    return tqdm(**kwargs)


def say(message: str) -> None:
    """Print above a running progress bar instead of onto its line."""
    tqdm.write(message, file=sys.stdout)
    sys.stdout.flush()


def duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{max(seconds, 0) / 60:.1f} min"


class Pace:
    """The speed this session trains at, without the compilation: the first step compiles (its time
    is reported apart), the next PACE_STEPS are timed, then one line gives steps/s and the ETA."""

    def __init__(self, first_step: int, total: int):
        self.first_step, self.total = first_step, total
        self.started = time.perf_counter()
        self.compiled_at: float | None = None
        self.reported = False

    def tick(self, step: int) -> None:
        now = time.perf_counter()
        if self.reported:
            return
        if self.compiled_at is None:
            self.compiled_at = now
            say(f"compiled the training step and ran it once in {now - self.started:.1f} s")
        elif step - self.first_step - 1 == PACE_STEPS or (step == self.total and step - self.first_step > 1):
            timed = step - self.first_step - 1
            rate = timed / (now - self.compiled_at)
            self.reported = True
            say(f"speed here: {rate:.2f} steps/s after compilation ({timed} steps timed); the whole schedule of "
                f"{self.total:,} steps takes {duration(self.total / rate)}, the {self.total - step:,} left "
                f"{duration((self.total - step) / rate)}")
