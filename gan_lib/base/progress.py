"""What a person watching a long run sees in the notebook or terminal: a progress bar that works
in Jupyter, Colab and under `make`, messages printed above it, and the run's speed and ETA.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from contextlib import contextmanager

from tqdm.auto import tqdm

HEADLESS_ENV = "GAN_LIB_HEADLESS"  # set by gan_lib.scripts.run_notebooks for the kernels papermill starts
PACE_STEPS = 20  # steps timed after compilation for the speed and ETA line


def progress_bar(**kwargs):
    """A live bar in Jupyter and Colab; under `make` (papermill) a plain text bar in the log,
    refreshed every 20 s, since papermill does not relay notebook widgets to the terminal."""
    if os.environ.get(HEADLESS_ENV):
        from tqdm import tqdm as text_tqdm

        return text_tqdm(file=sys.stdout, mininterval=20, ascii=True, ncols=100, **kwargs)
    return tqdm(**kwargs)


def print_above_bar(message: str) -> None:
    """Print above a running progress bar instead of onto its line."""
    tqdm.write(message, file=sys.stdout)
    sys.stdout.flush()


def duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{max(seconds, 0) / 60:.1f} min"


class Pace:
    """The speed this session trains at, without the compilation: the first step compiles (its time
    is reported apart), the next PACE_STEPS are timed one by one, then one line gives steps/s (from
    their median, so a step that compiles later, e.g. lazy R1's first, does not count) and the ETA."""

    def __init__(self, total: int):
        self.total = total
        self.last = time.perf_counter()
        self.durations: list[float] | None = None
        self.reported = False

    def tick(self, step: int) -> None:
        now = time.perf_counter()
        if self.reported:
            return
        if self.durations is None:
            self.durations = []
            print_above_bar(f"compiled the training step and ran it once in {now - self.last:.1f} s")
        else:
            self.durations.append(now - self.last)
        self.last = now
        if len(self.durations) == PACE_STEPS or (step == self.total and self.durations):
            rate = 1.0 / statistics.median(self.durations)
            self.reported = True
            print_above_bar(f"speed here: {rate:.2f} steps/s after compilation (median of {len(self.durations)} steps timed); the "
                            f"whole schedule of {self.total:,} steps takes {duration(self.total / rate)}, the {self.total - step:,} "
                            f"left {duration((self.total - step) / rate)}")


class Stopwatch:
    """Times named stages (`with watch("features"): ...`), printing each as it ends."""

    def __init__(self):
        self.times: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        yield
        self.times[name] = round(time.perf_counter() - start, 2)
        print(f"[{name}] {self.times[name]:.1f} s", flush=True)
