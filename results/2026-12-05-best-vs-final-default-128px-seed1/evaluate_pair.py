"""A stage's generator.keras and generator_best.keras, each evaluated in full (06's evaluation,
which_generator final / best) in a copy of the run folder cut back to the stage: no checkpoints,
history.csv to the stage's step, the stage's health.csv, best.json and generators, generator.json
the stage's step. Writes <out>/final/runs/<run>/ and <out>/best/runs/<run>/, for quality --compare.

    .venv/bin/python results/2026-12-05-best-vs-final-default-128px-seed1/evaluate_pair.py \\
        <run folder> <stage folder> <out> <stage's steps>
"""
import csv
import json
import shutil
import sys
from pathlib import Path

from gan_lib.config import GANConfig
from gan_lib.data.storage import ensure_processed
from gan_lib.evaluation.evaluate import evaluate_run, run_config

run_dir, stage, out, steps = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
for which in ("final", "best"):
    copy = out / which / "runs" / run_dir.name
    if (copy / "metrics.json").exists():
        continue
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("checkpoints", "generator*", "metrics.json",
                                                                 "coverage.csv", "best.json", "health.csv"))
    for name in ("generator.keras", "generator_best.keras", "best.json", "health.csv"):
        shutil.copy2(stage / name, copy / name)
    (copy / "generator.json").write_text(json.dumps({"step": steps}))
    with (copy / "history.csv").open() as f:
        rows = list(csv.DictReader(f))
    with (copy / "history.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, rows[0].keys())
        writer.writeheader()
        writer.writerows(row for row in rows if int(row["step"]) <= steps)
    cfg = run_config(GANConfig(run_name=run_dir.name, output_root=str(copy.parent), which_generator=which))
    ensure_processed(cfg)
    evaluate_run(cfg)
