"""Files written whole or not at all, whoever else writes them (no gan_lib imports, no TensorFlow).

Each write goes to a temporary file of its own beside the target (two processes never share one),
is flushed to disk, then renamed over the target: a reader sees the old file or the new one, never
a torn one, and a crash mid-write leaves the old file and no litter but the temporary one.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replacing(path: Path, mode: str = "w", **open_args):
    """Yield a file open for writing that replaces `path` when the block ends without error; on an
    error the temporary file is removed and `path` is untouched."""
    path = Path(path)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, mode, **open_args) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # as an ordinary new file, not mkstemp's owner-only mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, content: dict) -> None:
    """JSON, indented, written whole or not at all."""
    with replacing(path) as f:
        f.write(json.dumps(content, indent=2))


def read_json(path: Path, remedy: str) -> dict:
    """A JSON record; one that cannot be read (torn by an old writer, edited, binary garbage) is a
    ValueError naming the file and what to do (`remedy`), not a bare decoder traceback."""
    try:
        return json.loads(Path(path).read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is damaged: not the JSON it should hold ({err}). {remedy}") from None


def write_bytes(path: Path, data: bytes) -> None:
    with replacing(path, "wb") as f:
        f.write(data)
