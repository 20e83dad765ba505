"""A long run evaluated as it goes: train one preset in stages (say 4k, 8k, 16k, 24k and 37.5k steps,
the report's schedule), evaluate the generator where each stage ends and keep that stage, then
draw several such runs against steps, to see whether a run keeps improving, levels off or declines.

    python -m gan_lib.scripts.stages --data-dir ../shared/data/brain_mri_yes_no --only report-ada-mbstd-r1 \\
        --set classes=both --image-size 128 --seed 0 --stages 4000 8000 16000 --out outputs/stages/default_s0
    python -m gan_lib.scripts.stages --curves outputs/stages/default_s0 outputs/stages/report_s0 [--record SLUG]

A stage is kept as <out>/stage_<steps>/: metrics.json, the quality table's files (quality.json,
table.md, figures), health.csv, best.json, coverage.csv, the sample grid of its last step
(grid.png) and its generators (.keras, not for git). Stopped anywhere, the same command resumes:
a kept stage is skipped, and training resumes exactly from the run's checkpoints.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
from pathlib import Path

import matplotlib.pyplot as plt

from gan_lib.base.files import write_json
from gan_lib.config import PRESETS, GANConfig
from gan_lib.data.storage import ensure_processed
from gan_lib.evaluation.evaluate import evaluate_run
from gan_lib.evaluation.metrics import LESS_DIVERSE_RATIO
from gan_lib.plots import kid_curves, stage_curves, stage_grids
from gan_lib.records.evaluation import EVALUATION_RECORD, read_best, read_evaluation
from gan_lib.runs.generate import generate, load_generator
from gan_lib.runs.location import run_path
from gan_lib.runs.logs import load_history
from gan_lib.scripts.quality import STEPS_PER_EPOCH, preset_config, setting, summarise
from gan_lib.scripts.results import add_record_option, finish_record, start_record
from gan_lib.training.loop import train
from gan_lib.training.monitor import replay_stopping

KEPT = ("metrics.json", "health.csv", "best.json", "coverage.csv", "generator.keras", "generator_best.keras")
GRID_IMAGES = 8
STOP_AFTER = (4, 8, 16, 24)  # stop_after_checks values replayed on each run's quality checks


def stage_folders(out: Path) -> list[Path]:
    """The kept stages of the run in `out`, fewest steps first."""
    return sorted((p for p in out.glob("stage_*") if p.name[6:].isdigit() and (p / EVALUATION_RECORD).exists()),
                  key=lambda p: int(p.name[6:]))


def train_stages(args) -> None:
    """Train `args.only` to each of `args.stages` in turn, evaluating and keeping each stage."""
    out = Path(args.out)
    for steps in args.stages:
        stage = out / f"stage_{steps}"
        if (stage / EVALUATION_RECORD).exists():
            continue
        cfg = preset_config(args.only, argparse.Namespace(**{**vars(args), "steps": steps}))
        ensure_processed(cfg)
        print(f"=== {args.only}: on to {steps} steps at {cfg.image_size} px")
        train(cfg)  # resumes from the run's last checkpoint
        evaluate_run(cfg)
        keep_stage(run_path(cfg), stage, out.name, args.seed)
        print(f"=== kept {stage}")


def keep_stage(run_dir: Path, stage: Path, label: str, seed: int) -> None:
    """Copy what an evaluated run holds into `stage`, with the quality table of it (labelled
    `label`) and its latest sample grid; made whole under a temporary name, so a stop leaves no
    half stage."""
    partial = stage.with_name(stage.name + ".tmp")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    summarise({label: run_dir}, partial, seed)
    for name in KEPT:
        if (run_dir / name).exists():  # best.json only where the run checked its quality (kid_every > 0)
            shutil.copy2(run_dir / name, partial / name)
    shutil.copy2(max((run_dir / "samples").glob("epoch_*.png")), partial / "grid.png")
    os.replace(partial, stage)


def stage_row(stage: Path) -> dict:
    """A kept stage's quality row, with each class's KID beside the held-out real scans' and the best
    generator so far (by its best.json's figure)."""
    (row,) = json.loads((stage / "quality.json").read_text())["rows"].values()
    row = {key: value for key, value in row.items() if key != "config"}
    per_class = read_evaluation(stage).fidelity.get("per_class", {})
    for name, figures in per_class.items():
        reach = figures["coverage"]
        row.update({f"kid_{name}": figures["generated_vs_train"]["kid"],
                    f"kid_{name}_baseline_held_out": figures["baseline_held_out_vs_train"]["kid"],
                    **{f"{kind}_{name}_{side}": reach[key][kind] for kind in ("recall", "coverage")
                       for side, key in (("matched", "generated_vs_train_matched"),
                                         ("held_out", "baseline_held_out_vs_train"))}})
    row["classes"] = sorted(per_class)
    best = read_best(stage)  # None for a run that never checked its quality (kid_every=0)
    return {**row, "best_by": best and best.by, "best_step": best and best.step, "best_value": best and best.value}


def curves(folders: list[Path], out: Path, seed: int) -> dict:
    """quality.json (one row per run and stage, named `<run>_<steps>`, each run's stop replays and
    its quality checks, as in its last stage's health.csv), table.md, stages.png (the
    evaluations against steps), kid_vs_steps.png (each run's quality checks, every 500 steps, from
    its last stage's health.csv) and stage_grids.png (each stage's generated images)."""
    rows, health, stops, grids, synthetic = {}, {}, {}, {}, False
    for folder in folders:
        stages = stage_folders(folder)
        if not stages:
            raise FileNotFoundError(f"{folder} holds no evaluated stage_<steps>/ folder (train it with --only first)")
        for stage in stages:
            rows[f"{folder.name}_{stage.name[6:]}"] = {"run": folder.name, **stage_row(stage)}
        health[folder.name] = load_history(stages[-1], "health.csv")
        stops[folder.name] = stopping(health[folder.name], read_best(stages[-1]))
        synthetic |= read_evaluation(stages[-1]).synthetic_data  # phantom scans: every figure says so
        grids[folder.name] = {f"{int(s.name[6:]):,} steps": generate(load_generator(s), GRID_IMAGES, seed)[0]
                              for s in stages}
    result = {"rows": rows, "stopping": stops, "checks": health}  # the checks too: a replay needs only the record
    write_json(out / "quality.json", result)
    (out / "table.md").write_text(tables(result))
    figures = {"stages.png": stage_curves(rows, synthetic), "kid_vs_steps.png": kid_curves(health, synthetic),
               "stage_grids.png": stage_grids(grids, synthetic)}
    for name, figure in figures.items():
        figure.savefig(out / name, dpi=100, bbox_inches="tight")
        plt.close(figure)
    print(tables(result))
    print(f"wrote {out}/quality.json, table.md, stages.png, kid_vs_steps.png, stage_grids.png")
    return result


def stopping(checks: list[dict], best) -> dict:
    """Where each of STOP_AFTER's `stop_after_checks` would have stopped this run (None: not
    before its last check) and which best generator it would have kept (with its check's KID and
    recall against the training scans), with every check a candidate and from the default
    `best_from_step` on, replayed by the figure its best.json names."""
    if best is None:
        return {}
    replays, last = [], int(checks[-1]["step"])
    for limit, from_step in itertools.product(STOP_AFTER, (0, GANConfig().best_from_step)):
        stop, kept = replay_stopping(checks, best.by, limit, min(from_step, last))  # as training's first_candidate
        row = next((r for r in checks if r["step"] == kept), {})
        replays.append({"stop_after_checks": limit, "best_from_step": from_step, "stops_at": stop, "keeps": kept,
                        "kept_value": row.get(best.by), **{f"kept_{k}": row.get(k) for k in ("kid", "recall")}})
    return {"by": best.by, "last_check": last, "replays": replays}


def tables(result: dict) -> str:
    return table(result["rows"]) + stopping_table(result["stopping"])


def stopping_table(stops: dict) -> str:
    lines = ["", "What `stop_after_checks=N` would have done, replayed on each run's quality checks (health.csv), "
             "with every check a candidate for generator_best.keras or only those from `best_from_step` on:",
             "", "| run | picked by | N | best_from_step | stops at step | keeps the generator of step (figure) "
             "| its KID and recall against the training scans |", "|---|---|---|---|---|---|---|"]
    for run, replay in stops.items():
        for r in replay.get("replays", []):
            kept, against_train = (("-", "-") if r["keeps"] is None else
                                   (f"{r['keeps']:,} ({r['kept_value']:.3f})", f"{r['kept_kid']:.3f}, {r['kept_recall']:.2f}"))
            stop = f"not before {replay['last_check']:,}" if r["stops_at"] is None else f"{r['stops_at']:,}"
            lines.append(f"| {run} | {replay['by']} | {r['stop_after_checks']} | {r['best_from_step']:,} | {stop} "
                         f"| {kept} | {against_train} |")
    return "\n".join(lines) + "\n"


def table(rows: dict) -> str:
    def figure(value, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    def best_so_far(r) -> str:
        return "-" if r["best_by"] is None else f"{r['best_step']:,} ({r['best_by']} {r['best_value']:.3f})"

    def ratio(top, bottom) -> str:
        return "-" if top is None or not bottom else f"{top / bottom:.2f}x"

    lines = ["| run | steps | KID (held-out real) | recall (held-out) | coverage (held-out) "
             "| diversity vs real | near-copies (real) | TSTR / real-only AUC | real + generated / real-only AUC "
             "| CAS / held-out | no-tumour called tumour (held-out) | best so far: step (figure) |",
             "|" + "---|" * 12]
    for r in rows.values():
        lines.append(
            f"| {r['run']} | {r['steps']:,} | {r['kid']:.3f} ({figure(r['kid_baseline_held_out'], '.3f')}) "
            f"| {r['recall_matched']:.2f} ({r['recall_held_out']:.2f}) | {r['coverage_matched']:.2f} "
            f"({r['coverage_held_out']:.2f}) | {r['diversity_ratio']:.0%} "
            f"| {r['near_copy_share']:.1%} ({r['real_near_copy_share']:.1%}) "
            f"| {ratio(r['auc_generated_only'], r['auc_real'])} | {ratio(r['auc_real_plus_generated'], r['auc_real'])} "
            f"| {ratio(r.get('cas'), r.get('cas_held_out'))} "
            f"| {figure(r.get('called_tumour_no_generated'), '.0%')} "
            f"({figure(r.get('called_tumour_no_held_out'), '.0%')}) "
            f"| {best_so_far(r)} |")
    lines += ["", f"KID in brackets: held-out real scans against the training scans. Diversity below "
                  f"{LESS_DIVERSE_RATIO:.0%} of the real scans' is a collapse warning."]
    if any(r["classes"] for r in rows.values()):
        lines += ["", "Each class (generated against its training scans; in brackets, its held-out real scans):",
                  "", "| run | steps | class | KID | recall | coverage |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['run']} | {r['steps']:,} | {c} | {r[f'kid_{c}']:.3f} ({r[f'kid_{c}_baseline_held_out']:.3f}) "
                  f"| {r[f'recall_{c}_matched']:.2f} ({r[f'recall_{c}_held_out']:.2f}) "
                  f"| {r[f'coverage_{c}_matched']:.2f} ({r[f'coverage_{c}_held_out']:.2f}) |"
                  for r in rows.values() for c in r["classes"]]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=sorted(PRESETS), help="the preset to train in stages")
    parser.add_argument("--stages", type=int, nargs="+", default=[4000, 8000, 16000, 24000, 37500])
    parser.add_argument("--curves", nargs="+", default=[], help="folders of runs trained in stages, drawn together")
    parser.add_argument("--data-dir", default="", help="folder with yes/ and no/; default: download from Kaggle")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--feature-extractor", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--xla", default="auto")
    parser.add_argument("--speed-layers", default="auto")
    parser.add_argument("--set", type=setting, action="append", default=[], metavar="NAME=VALUE",
                        help="a training setting over the preset's, e.g. --set classes=both (config.json records it)")
    parser.add_argument("--out", default="outputs/stages/run", help="the run's folder (with --only)")
    add_record_option(parser, "the curves' table and figures")
    args = parser.parse_args(argv)
    if bool(args.only) == bool(args.curves):
        parser.error("give either --only PRESET (train in stages) or --curves FOLDER ... (draw them)")
    if args.only:
        bad = [s for s in args.stages if s % STEPS_PER_EPOCH]
        if bad or args.stages != sorted(args.stages):
            parser.error(f"--stages must rise, each a multiple of {STEPS_PER_EPOCH} (not {bad or args.stages})")
        train_stages(args)
        return 0
    out = start_record(args.record, "stages", f"Stages: {', '.join(args.curves)}") if args.record else Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = curves([Path(f) for f in args.curves], out, args.seed)
    if args.record:
        finish_record(out, tables(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
