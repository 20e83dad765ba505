"""Each class of class-conditional runs, generated beside real: the scan descriptors per class
(head symmetry above all: a one-sided lesion makes a head asymmetric, so no-tumour heads drawn
asymmetric look like tumours to a classifier that has not learnt this dataset's other cues), and
the label fidelity of each run's metrics.json (06's real-only classifiers). One table for several
runs, e.g. one preset on four seeds against another.

    python -m gan_lib.scripts.class_study --runs <run folder> [<run folder> ...] --out DIR [--n 200]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from gan_lib.base.files import write_json
from gan_lib.config import class_names
from gan_lib.data.storage import load_processed
from gan_lib.evaluation import descriptors
from gan_lib.records.evaluation import read_evaluation
from gan_lib.records.run import read_run_record
from gan_lib.runs.folder import recorded_dataset
from gan_lib.runs.generate import generate, generator_step, load_generator, takes_label

SHOWN = ("symmetry", "centre_contrast", "p50")  # the descriptors the table shows (the JSON has all)


def class_rows(run_dir: Path, n: int) -> dict:
    """Per class: the mean of each descriptor over `n` generated images of it, its real training
    scans and its held-out ones; with the run's label fidelity figures."""
    record = read_run_record(run_dir)
    generator = load_generator(run_dir)
    if not takes_label(generator):
        raise SystemExit(f"{run_dir}: its generator makes one class; this study compares classes")
    names = class_names(record.config["classes"], record.config["class_map"])
    dataset = recorded_dataset(run_dir)
    train, train_labels, _ = load_processed(dataset, "train")
    held_out, held_out_labels, _ = load_processed(dataset, "test")
    fidelity = read_evaluation(run_dir).utility.get("label_fidelity") or {}
    rows = {}
    for label, name in enumerate(names):
        sets = {"generated": generate(generator, n, seed=record.config["seed"], label=label)[0],
                "train": train[train_labels == label], "held_out": held_out[held_out_labels == label]}
        rows[name] = {side: {key: float(np.nanmean(values)) for key, values in descriptors.describe(images).items()}
                      for side, images in sets.items() if len(images)}
        rows[name]["label_fidelity"] = fidelity.get("per_class", {}).get(name)
    return {"run": str(run_dir), "preset": record.preset, "seed": record.config["seed"],
            "steps": generator_step(run_dir), "cas": fidelity.get("score"),
            "cas_held_out": fidelity.get("held_out_real"), "classes": rows}


def table(studies: list[dict]) -> str:
    """One row per run and class: the descriptors (generated / training / held-out) and the share
    called tumour (generated / held-out real)."""
    head = ("| run | seed | class | " + " | ".join(f"{d}: generated / train / held-out" for d in SHOWN)
            + " | called tumour: generated / held-out | CAS (held-out) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for study in studies:
        for name, row in study["classes"].items():
            cells = [" / ".join(f"{row[side][d]:.2f}" if side in row else "-" for side in ("generated", "train", "held_out"))
                     for d in SHOWN]
            calls = row["label_fidelity"]
            called = (f"{calls['generated_called_tumour']:.0%} / {calls['held_out_called_tumour']:.0%}" if calls else "-")
            cas = f"{study['cas']:.2f} ({study['cas_held_out']:.2f})" if study["cas"] is not None else "-"
            lines.append(f"| {study['preset']} | {study['seed']} | {name} | " + " | ".join(cells) + f" | {called} | {cas} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, nargs="+", required=True, help="finished, evaluated conditional runs")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--n", type=int, default=200, help="generated images per class")
    args = parser.parse_args(argv)
    studies = [class_rows(run, args.n) for run in args.runs]
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "class_study.json", {"descriptors": descriptors.DESCRIPTORS, "runs": studies})
    (args.out / "class_study.md").write_text(table(studies) + "\n")
    print(table(studies))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
