"""Where a configured path points: an absolute path stays; a relative one is under the Colab
workspace on Drive when a notebook's bootstrap opened one, else under the repository."""

from __future__ import annotations

from pathlib import Path

from .colab import workspace_root

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def resolve(configured: str | Path) -> Path:
    path = Path(configured).expanduser()
    return path if path.is_absolute() else (workspace_root() or PROJECT_ROOT) / path
