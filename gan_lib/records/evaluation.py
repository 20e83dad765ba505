"""A run's evaluation record (metrics.json) and its saved generators' steps (generator.json,
best.json)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ..base.files import read_json, write_json
from .migrations import BEST_VERSION, EVALUATION_VERSION, upgrade_best, upgrade_evaluation

EVALUATION_RECORD = "metrics.json"
BEST_RECORD = "best.json"
FINAL_RECORD = "generator.json"


@dataclass
class EvaluationRecord:
    """Every figure of one evaluation, each section beside its real-vs-real baseline (the sections'
    keys are described in docs/evaluation.md)."""
    run: str
    config: dict  # the run's settings with the evaluation's (`which_generator`: the file measured)
    generator_step: int | None  # the step the measured generator was saved at; None: not recorded (before version 3)
    synthetic_data: bool
    n_generated: int
    n_train_real: int
    n_held_out_real: int
    fidelity: dict
    coverage: dict | None  # None: evaluated before coverage existed (evaluate.add_coverage fills it)
    descriptors: dict | None  # as coverage
    diversity: dict
    memorisation: dict
    utility: dict
    warnings: list
    timings_s: dict
    versions: dict
    schema_version: int = EVALUATION_VERSION


@dataclass
class BestGenerator:
    """Which step generator_best.keras was saved at, which figure picked it (`by`: a `best_by`
    value), and its KID against the training scans and against the held-out ones (None: none)."""
    step: int
    kid: float
    kid_std: float
    by: str
    kid_held_out: float | None
    schema_version: int = BEST_VERSION

    @property
    def value(self) -> float:
        """The figure it was picked by."""
        return self.kid if self.by == "kid" else self.kid_held_out


def read_evaluation(run_dir: Path) -> EvaluationRecord:
    path = Path(run_dir) / EVALUATION_RECORD
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: evaluate the run first (06_evaluate, or `make report`).")
    return EvaluationRecord(**upgrade_evaluation(read_json(path, "Evaluate the run again."), path))


def write_evaluation(run_dir: Path, record: EvaluationRecord) -> None:
    write_json(Path(run_dir) / EVALUATION_RECORD, dataclasses.asdict(record))


def read_best(run_dir: Path) -> BestGenerator | None:
    """best.json, or None for a run that has not checked its quality yet (kid_every=0, or before its first check)."""
    path = Path(run_dir) / BEST_RECORD
    if not path.exists():
        return None
    return BestGenerator(**upgrade_best(read_json(path, "Delete it: the next quality check writes it anew."), path))


def write_best(run_dir: Path, best: BestGenerator) -> None:
    write_json(Path(run_dir) / BEST_RECORD, dataclasses.asdict(best))


def read_final_step(run_dir: Path) -> int | None:
    """The step generator.keras was saved at (the schedule's end, or where `stop_after_checks`
    stopped the run); None for a folder trained before generator.json was written."""
    path = Path(run_dir) / FINAL_RECORD
    return read_json(path, "Delete it and train the run again to its end.")["step"] if path.exists() else None


def write_final_step(run_dir: Path, step: int) -> None:
    write_json(Path(run_dir) / FINAL_RECORD, {"step": step})
