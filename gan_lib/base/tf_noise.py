"""TensorFlow's C++ log lines that say nothing to a user, kept off the terminal (no TensorFlow here).

TensorFlow writes them from C++ straight to the process's stderr (file descriptor 2), so Python's
logging cannot catch them, and `TF_CPP_MIN_LOG_LEVEL` does not hide the start-up lines of the
versions installed here: `filtered_stderr` puts a filter on descriptor 2 itself, which child
processes (the notebooks' kernels) inherit. Every other line, errors included, passes. Every
`python -m gan_lib...` program has it from its start (gan_lib/__init__.py).
"""

from __future__ import annotations

import atexit
import os
import re
import sys
import threading
from contextlib import contextmanager

# Start-up chatter: absl INFO/WARNING lines (oneDNN, no CUDA driver, XLA compiled), the error line of
# a machine without a GPU, and the notebook kernel's notes on its transport and shutdown.
START_UP = re.compile(r"[IW]\d{4} [\d:.]+ +\d+ \S+:\d+\] "
                      r"|E\d{4} [\d:.]+ +\d+ \S+:\d+\] failed call to cuInit"
                      r"|WARNING: All log messages before absl::"
                      r"|To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler"
                      r"|\[IPKernelApp\] (WARNING \| Kernel is running over TCP|ERROR \| KeyboardInterrupt caught)")
# Grappler's remapper gives up on fusing a layer's BiasAdd and activation when the gradient also
# reads the BiasAdd (gan_lib.models.layers' convolutions do): it leaves that graph unfused and says so as
# an "error" at every compile. The step runs and computes the same.
REMAPPER = re.compile(r"E\d{4} [\d:.]+ +\d+ meta_optimizer\.cc:\d+\] remapper failed: INVALID_ARGUMENT: "
                      r"Mutation::Apply error: fanout ")
REMAPPER_NOTE = ("(TensorFlow's 'remapper failed ... Mutation::Apply error' lines are hidden: grappler skips one "
                 "fusion on this graph, and the step computes the same; docs/hardware.md)\n")


def _start() -> tuple[int, threading.Thread]:
    """Put the filter on descriptor 2; returns the terminal's descriptor and the filter's thread."""
    read, write = os.pipe()
    terminal = os.dup(2)
    sys.stderr.flush()
    os.dup2(write, 2)
    os.close(write)

    def pump():
        noted = False
        with os.fdopen(read, errors="replace") as lines, os.fdopen(os.dup(terminal), "w") as out:
            for line in lines:
                if REMAPPER.match(line):
                    line, noted = ("" if noted else REMAPPER_NOTE), True
                elif START_UP.match(line):
                    continue
                out.write(line)
                out.flush()

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return terminal, thread


def _stop(terminal: int, thread: threading.Thread) -> None:
    """Give descriptor 2 back to the terminal, once the filter has passed on every line."""
    sys.stderr.flush()
    os.dup2(terminal, 2)
    os.close(terminal)
    thread.join(timeout=5)


@contextmanager
def filtered_stderr():
    """This process's stderr, and that of the processes it starts, through a filter that drops the
    START_UP and REMAPPER lines (the first REMAPPER line is replaced by REMAPPER_NOTE, once)."""
    started = _start()
    try:
        yield
    finally:
        _stop(*started)


def filter_stderr_until_exit() -> None:
    """`filtered_stderr` for the rest of this process: a program's last lines (a traceback too) still
    pass, as the filter is taken off at exit."""
    atexit.register(_stop, *_start())
