"""Where a run folder is and who writes it: the folder these settings name (`run_path`), and the
lock a training or an evaluation holds on it (`run_lock`, `lock_holder`). It imports no TensorFlow,
so the commands that only check a run folder (make's parameter checks, `generate`'s arguments)
answer at once."""

from __future__ import annotations

import fcntl
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path

from ..base.paths import resolve
from ..config import GANConfig
from ..records.run import RunFolderError


def run_path(cfg: GANConfig) -> Path:
    """The run folder these settings name: <output_root>/<run_name>."""
    return resolve(cfg.output_root) / cfg.run_name


@contextmanager
def run_lock(run_dir: Path):
    """One writer per run folder: an exclusive lock on <run folder>/.lock for as long as the run
    trains or is evaluated. The operating system drops it when the process ends, however it ends, so a killed run
    leaves nothing stuck. (It holds between processes of one machine; across two Colab runtimes
    sharing a Drive folder it is not checked here.)"""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / ".lock"
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise RunFolderError(f"{run_dir} is in use ({holder}: training, or being evaluated); wait for it to finish "
                             "or stop it, or choose another run_name.") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    handle.flush()
    try:
        yield
    finally:
        handle.close()  # releases the lock


def lock_holder(run_dir: Path) -> str | None:
    """Who holds the run folder's lock ("pid N on host since T"), or None if no process does."""
    path = run_dir / ".lock"
    if not path.exists():
        return None
    with path.open() as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return handle.read().strip() or "another process"
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None
