"""Reading a run's losses from its own history.csv (never typed-in values), and its per-epoch
sample grids as one strip and an animated GIF.

The automatic reading uses the last epoch's means against fixed, documented thresholds; it names
the failure the report hit (D wins outright: D loss near 0, D(real) near 1, D(fake) near 0, G loss
high and rising), divergence, and oscillation.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..records.evaluation import read_best
from ..records.migrations import upgrade_health_rows
from ..records.run import read_run_record

D_WINS_LOSS = 0.1  # D's loss below this (BCE averaged over real and fake) ...
D_WINS_MARGIN = 0.8  # ... and mean D(real) - mean D(fake) above this: D separates perfectly
G_RISING = 1.5  # G's last-epoch mean over its best epoch's mean: G is losing ground
OSCILLATION_CV = 0.5  # spread (std / mean) of G's smoothed loss within the last epoch


def load_history(run_dir: Path, name: str = "history.csv") -> list[dict]:
    """A run's history.csv (or, with name="health.csv", its quality checks) as rows of floats (NaN
    where a value is blank, and in a column an older gan_lib did not write)."""
    path = Path(run_dir) / name
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: is {run_dir} a training run folder"
                                + (" with kid_every > 0?" if name == "health.csv" else
                                   "? Run 04_train first, with this run_name and output_root (on Colab: the same workspace)."))
    with path.open() as f:
        rows = [{k: float(v) if v != "" else float("nan") for k, v in row.items()} for row in csv.DictReader(f)]
    return upgrade_health_rows(rows) if name == "health.csv" else rows


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average (shorter at the start), the same length as `values`."""
    values = np.asarray(values, float)
    window = max(1, min(window, len(values)))
    cumulative = np.cumsum(np.insert(values, 0, 0.0))
    counts = np.minimum(np.arange(1, len(values) + 1), window)
    return (cumulative[1:] - cumulative[np.arange(1, len(values) + 1) - counts]) / counts


def epoch_means(history: list[dict]) -> list[dict]:
    """Per-epoch means of every logged quantity: the report's loss table, from the run itself."""
    epochs = sorted({int(row["epoch"]) for row in history})
    keys = ("d_loss", "g_loss", "d_real", "d_fake")
    table = []
    for epoch in epochs:
        rows = [row for row in history if int(row["epoch"]) == epoch]
        table.append({"epoch": epoch, "last_step": int(rows[-1]["step"]),
                      **{k: float(np.mean([row[k] for row in rows])) for k in keys}})
    return table


def smoothing_window(history: list[dict], points: int = 50) -> int:
    """A trailing-mean window that leaves about `points` independent points along the run."""
    return max(1, len(history) // points)


def format_epoch_table(table: list[dict]) -> str:
    lines = [f"{'epoch':>5s} {'last step':>9s} {'D loss':>8s} {'G loss':>8s} {'D(real)':>8s} {'D(fake)':>8s}"]
    lines += [f"{r['epoch']:5d} {r['last_step']:9d} {r['d_loss']:8.3f} {r['g_loss']:8.3f} {r['d_real']:8.3f} "
              f"{r['d_fake']:8.3f}" for r in table]
    return "\n".join(lines)


def read_losses(history: list[dict]) -> dict:
    """A verdict ("d_wins", "diverged", "oscillating", "balanced") and sentences saying why."""
    if not history:
        return {"verdict": "no_history", "findings": ["history.csv has no rows yet."]}
    table = epoch_means(history)
    last = table[-1]
    findings, verdict = [], "balanced"
    g_all = np.array([row["g_loss"] for row in history])
    if not np.isfinite(g_all).all() or not np.isfinite([row["d_loss"] for row in history]).all():
        return {"verdict": "diverged", "findings": ["A loss became NaN or infinite: training diverged."]}
    best_g = min(row["g_loss"] for row in table)
    if last["d_loss"] < D_WINS_LOSS and last["d_real"] - last["d_fake"] > D_WINS_MARGIN:
        verdict = "d_wins"
        findings.append(
            f"The discriminator wins outright: in epoch {last['epoch']} its loss averages {last['d_loss']:.3f}, "
            f"D(real) {last['d_real']:.2f} vs D(fake) {last['d_fake']:.2f}, and G's loss is {last['g_loss']:.2f}. "
            "G gets little useful gradient; this is how the report's run ended (mode collapse follows).")
    elif len(table) > 1 and last["g_loss"] > G_RISING * best_g and last["g_loss"] > 2.0:
        verdict = "diverged"
        findings.append(f"G's loss rose from its best epoch mean {best_g:.2f} to {last['g_loss']:.2f}: "
                        "the game is drifting in D's favour.")
    last_epoch = np.array([row["g_loss"] for row in history if int(row["epoch"]) == last["epoch"]])
    trend = smooth(last_epoch, max(3, len(last_epoch) // 10))
    spread = trend.std() / max(abs(trend.mean()), 1e-9)
    if verdict == "balanced" and len(trend) >= 10 and spread > OSCILLATION_CV:
        verdict = "oscillating"
        findings.append(f"G's smoothed loss swings widely within epoch {last['epoch']} "
                        f"(std/mean {spread:.2f}): the two networks are oscillating.")
    if verdict == "balanced":
        findings.append(f"No failure pattern: in epoch {last['epoch']} D's loss averages {last['d_loss']:.3f} "
                        f"(D(real) {last['d_real']:.2f}, D(fake) {last['d_fake']:.2f}), G's {last['g_loss']:.2f}. "
                        "Losses alone do not show image quality or diversity: see the metrics.")
    return {"verdict": verdict, "findings": findings, "epochs": table}


def run_is_synthetic(run_dir: Path) -> bool:
    """Whether the run trained on the phantom data (its config.json says), so figures can say so."""
    return read_run_record(run_dir).data.synthetic


def sample_grids(run_dir: Path) -> list[Path]:
    return sorted((Path(run_dir) / "samples").glob("epoch_*.png"))


def read_health(run_dir: Path) -> dict | None:
    """The run's quality checks (health.csv), the steps that warned of collapse and the best-KID
    generator's step (best.json); None for a run trained with kid_every=0."""
    run_dir = Path(run_dir)
    if not (run_dir / "health.csv").exists():
        return None
    rows = load_history(run_dir, "health.csv")
    return {"rows": rows, "collapse_steps": [int(r["step"]) for r in rows if r["collapse_warning"]],
            "best": read_best(run_dir)}
