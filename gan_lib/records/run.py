"""A run folder's config.json: everything a run resolved (settings, its preset and what was set apart
from it, what took effect on this machine, the data it trained on, software and hardware)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ..base.files import read_json, write_json
from .migrations import RUN_RECORD_VERSION, NewerRecordError, upgrade_run_record

RUN_RECORD = "config.json"


@dataclass
class RunData:
    """The data a run trained on, and what identifies it: the training split's hash (or, for a run
    from before that hash was kept, the dataset file's: `identified_by` names which)."""
    dataset: str  # its name under data_root/processed
    file: str  # where it was when the run trained
    train_sha256: str | None
    file_sha256: str | None
    synthetic: bool
    source: str
    source_detail: str
    classes: str
    per_split: dict
    identified_by: str = "train_sha256"


@dataclass
class RunRecord:
    config: dict  # every setting, as trained (migrations.settings_as_trained)
    preset: str
    overridden: dict  # the settings set apart from the preset
    effective: dict  # what took effect here: the engine (and which steps each engine computed), the strategy, ...
    data: RunData
    versions: dict
    device: dict
    paths_relative_to: str  # the Colab workspace on Drive, or the repository
    schema_version: int = RUN_RECORD_VERSION

    @classmethod
    def from_dict(cls, raw: dict) -> RunRecord:
        return cls(**{**raw, "data": RunData(**raw["data"])})


class RunFolderError(RuntimeError):
    """A run folder that cannot be continued as it is (its config.json missing or unreadable, its
    checkpoints gone or damaged, its data changed); the message says why and what to do."""


def read_run_record(run_dir: Path) -> RunRecord:
    """The run folder's config.json, upgraded to today's shape; a missing or unreadable one is
    refused with its path: without it the run's settings and data cannot be checked."""
    path = Path(run_dir) / RUN_RECORD
    try:
        return RunRecord.from_dict(upgrade_run_record(read_json(path, ""), path))
    except NewerRecordError:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise RunFolderError(f"{path} is missing or unreadable ({type(err).__name__}: {err}); the run's settings "
                             "and data cannot be checked without it. Restore it, or move the run folder away to "
                             "start over.") from None


def write_run_record(run_dir: Path, record: RunRecord) -> None:
    write_json(Path(run_dir) / RUN_RECORD, dataclasses.asdict(record))
