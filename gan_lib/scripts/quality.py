"""`make quality`: every training preset on the same real tumour images, seed, batch size and step
budget, then the full evaluation of each, one table, KID-versus-steps curves, the sample grids side
by side and the scan descriptors of each run's images against the real ones, under outputs/quality/.

    python -m gan_lib.scripts.quality [--data-dir ../shared/data/brain_mri_yes_no] [--steps 6000] [--image-size 64]
    python -m gan_lib.scripts.quality ... --only resize-sn     # one preset (run several in parallel), no table
    python -m gan_lib.scripts.quality ... --table-only         # the table from finished runs
    python -m gan_lib.scripts.quality --image-size 128 --steps 37500   # the report's schedule, for a GPU
    python -m gan_lib.scripts.quality ... --precision float32 --xla on --speed-layers on --out DIR  # another engine
    python -m gan_lib.scripts.quality ... --only P --set reuse_fakes=False --out DIR  # a preset with one setting changed
    python -m gan_lib.scripts.quality --compare DIR1 DIR2 --out DIR  # finished --only runs side by side

Without --data-dir the images come from Kaggle (kagglehub), as in notebook 01.

Runs resume where they stopped (the training loop's checkpoints), so an interrupted benchmark is
continued by running the same command again.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from gan_lib.base.files import write_json
from gan_lib.base.progress import Stopwatch
from gan_lib.config import EVALUATION_FIELDS, PRESETS, GANConfig
from gan_lib.data.storage import dataset_name, ensure_processed, load_processed
from gan_lib.evaluation import descriptors
from gan_lib.evaluation.evaluate import add_coverage, coverage_section, evaluate_run, run_config, run_images
from gan_lib.evaluation.metrics import LESS_DIVERSE_RATIO
from gan_lib.plots import descriptor_histograms, kid_curves, least_covered, side_by_side
from gan_lib.records.evaluation import EVALUATION_RECORD, EvaluationRecord, read_best, read_evaluation
from gan_lib.records.run import read_run_record
from gan_lib.runs.folder import recorded_dataset
from gan_lib.runs.generate import generate, load_generator
from gan_lib.runs.location import run_path
from gan_lib.runs.logs import load_history
from gan_lib.scripts.results import add_record_option, finish_record, start_record
from gan_lib.training.loop import train

STEPS_PER_EPOCH = 500  # one sample grid and one KID check per 500 steps
GRID_IMAGES = 16
DESCRIBED_IMAGES = 200  # generated per run for the descriptor histograms (the grids are the first 16)


def setting(text: str) -> tuple[str, object]:
    """NAME=VALUE, the value read as a Python literal (16, 0.5, False) or else as text."""
    name, equals, value = text.partition("=")
    if not equals:
        raise argparse.ArgumentTypeError(f"{text!r}: write NAME=VALUE")
    try:
        return name.strip(), ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return name.strip(), value


def preset_config(preset: str, args) -> GANConfig:
    cfg = GANConfig.from_overrides(**{
        "data_source": "local" if args.data_dir else "kaggle", "data_dir": args.data_dir, "classes": "yes",
        "image_size": args.image_size, "seed": args.seed, "epochs": args.steps // STEPS_PER_EPOCH,
        "steps_per_epoch": STEPS_PER_EPOCH, "batch_size": 4, "kid_every": STEPS_PER_EPOCH,
        "checkpoint_every": STEPS_PER_EPOCH, "run_name": preset, "output_root": str(Path(args.out) / "runs"),
        "feature_extractor": args.feature_extractor, "preset": preset, "precision": args.precision, "xla": args.xla,
        "speed_layers": args.speed_layers, **dict(args.set)})  # --set may also change the data, e.g. classes=both
    return dataclasses.replace(cfg, dataset=dataset_name(cfg))  # the data these settings make, not the latest


def run_preset(preset: str, args) -> None:
    cfg = preset_config(preset, args)
    ensure_processed(cfg)
    print(f"=== {preset}: {cfg.epochs * cfg.steps_per_epoch} steps at {cfg.image_size} px, batch {cfg.batch_size}")
    train(cfg)
    if not (run_path(cfg) / EVALUATION_RECORD).exists():
        evaluate_run(cfg)


def summarise(runs: dict[str, Path], out: Path, seed: int) -> dict:
    """quality.json, table.md, kid_vs_steps.png, grids.png, descriptors.png and a figure of the least
    covered training scans per run, from finished runs, by label."""
    rows, health, grids, scans, configs = {}, {}, {}, {}, {}
    for label, run_dir in runs.items():
        run_metrics = read_evaluation(run_dir)
        evaluated = configs[label] = evaluated_config(run_dir, run_metrics)  # as evaluated: coverage, figures
        run_metrics = with_coverage(evaluated, run_metrics)
        record = read_run_record(run_dir)
        health[label] = load_history(run_dir, "health.csv")
        history = load_history(run_dir)
        fidelity, diverse, memo = run_metrics.fidelity, run_metrics.diversity, run_metrics.memorisation
        best = read_best(run_dir)
        rows[label] = {
            "steps": int(history[-1]["step"]), "wall_time_min": history[-1]["wall_time_s"] / 60,
            "generator": evaluated.which_generator, "generator_step": run_metrics.generator_step,
            "kid": fidelity["generated_vs_train"]["kid"], "kid_std": fidelity["generated_vs_train"]["kid_std"],
            "kid_baseline_held_out": fidelity.get("baseline_held_out_vs_train", {}).get("kid"),
            "best_training_kid": best.kid, "best_training_kid_step": best.step,
            "diversity_ratio": diverse["diversity_ratio"],
            **{f"{name}_{kind}": run_metrics.coverage[key][name] for name in ("recall", "coverage")
               for kind, key in (("matched", "generated_vs_train_matched"), ("held_out", "baseline_held_out_vs_train"))},
            "train_scans_not_covered": run_metrics.coverage["train_scans_not_covered"],
            "near_copy_share": memo["generated_near_copy_share"], "real_near_copy_share": memo["baseline_near_copy_share"],
            "collapse_warnings": int(sum(h["collapse_warning"] for h in health[label])),
            **utility_aucs(run_metrics.utility), **label_figures(run_metrics.utility),
            "feature_extractor": fidelity["feature_extractor"], "config": record.config,
            "engine": record.effective.get("engine"),
        }
        generated = generate(load_generator(run_dir, evaluated.which_generator), DESCRIBED_IMAGES, seed=seed)[0]
        grids[label], scans[label] = generated[:GRID_IMAGES], descriptors.describe(generated)
        figure = least_covered_figure(evaluated)
        figure.savefig(out / f"least_covered_{label}.png", dpi=100, bbox_inches="tight")
        plt.close(figure)  # one per run: a comparison of many runs would otherwise hold them all
    first_dir, first_config = next(iter(runs.values())), next(iter(configs.values()))
    # the dataset under this data root (a copied run folder's recorded path may be gone)
    real, _, _ = load_processed(recorded_dataset(first_dir, first_config), "train")
    grids = {"real (training)": real[np.random.default_rng(seed).choice(len(real), GRID_IMAGES, replace=False)],
             **grids}
    scans = {"real (training)": descriptors.describe(real), **scans}
    result = {"rows": rows, "bars": bars(rows) if "report" in rows and len(rows) > 1 else {}}
    write_json(out / "quality.json", result)
    (out / "table.md").write_text(table(rows, result["bars"]))
    kid_curves(health).savefig(out / "kid_vs_steps.png", dpi=100, bbox_inches="tight")
    side_by_side(grids).savefig(out / "grids.png", dpi=100, bbox_inches="tight")
    descriptor_histograms(scans).savefig(out / "descriptors.png", dpi=100, bbox_inches="tight")
    print(table(rows, result["bars"]))
    print(f"wrote {out}/quality.json, table.md, kid_vs_steps.png, grids.png, descriptors.png, least_covered_<run>.png")
    return result


def with_coverage(cfg: GANConfig, run_metrics: EvaluationRecord) -> EvaluationRecord:
    """A run's metrics.json (`run_metrics`); one evaluated before coverage existed gains it first
    (`add_coverage`, with the settings `evaluated_config` gives)."""
    if run_metrics.coverage is None:
        print(f"{run_path(cfg)}: evaluated before coverage existed; adding coverage and scan descriptors")
        run_metrics = add_coverage(cfg)
    return run_metrics


def evaluated_config(run_dir: Path, run_metrics: EvaluationRecord) -> GANConfig:
    """A finished run's settings with the evaluation settings its metrics.json was made with; its
    dataset remade if missing here."""
    evaluated_with = {name: run_metrics.config[name] for name in EVALUATION_FIELDS}
    cfg = run_config(GANConfig.from_overrides(run_name=run_dir.name, output_root=str(run_dir.parent), **evaluated_with))
    ensure_processed(cfg)
    return cfg


def least_covered_figure(cfg: GANConfig):
    """06's figure of the training scans a finished run covers least, above their nearest generated
    images (the evaluation's generated sample, made again from its seed)."""
    images = run_images(cfg, Stopwatch())
    _, per_real = coverage_section(images.f_train, images.f_gen, images.f_held, cfg.seed)
    return least_covered(images.train, images.generated, per_real, synthetic=images.kind == "phantom")


def utility_aucs(utility: dict) -> dict:
    """Mean classifier AUC trained on real images only, on real plus generated, and (a generator of
    both classes) on generated only: train on synthetic, test on real. None where not measured."""
    conditions = utility.get("conditions", {})

    def auc(prefix: str):
        found = [v["auc_mean"] for name, v in conditions.items() if name.startswith(prefix)]
        return found[0] if found else None

    return {"auc_real": conditions["real"]["auc_mean"] if "real" in conditions else None,
            "auc_real_plus_generated": auc("real + "), "auc_generated_only": auc("generated only")}


def label_figures(utility: dict) -> dict:
    """The label fidelity (CAS) beside the held-out real scans', and each class's share called
    tumour, generated and held-out real; {} where it was not measured."""
    fidelity = utility.get("label_fidelity")
    if not fidelity:
        return {}
    return {"cas": fidelity["score"], "cas_held_out": fidelity["held_out_real"], "cas_ratio": fidelity["ratio"],
            **{f"called_tumour_{name}_{side}": figures[f"{side}_called_tumour"]
               for name, figures in fidelity["per_class"].items() for side in ("generated", "held_out")}}


def bars(rows: dict) -> dict:
    """The bars a new preset must pass to replace the default, for the best one (lowest final KID)
    against `report`: half its KID, diversity within 15 % of the real set's, no more near-copies
    than real scans have of each other, no collapse warning."""
    best = min((p for p in rows if p != "report"), key=lambda p: rows[p]["kid"])
    row, report = rows[best], rows["report"]
    return {
        "best_preset": best,
        "kid_at_most_half_of_report": row["kid"] <= 0.5 * report["kid"],
        "diversity_within_15_percent_of_real": abs(row["diversity_ratio"] - 1.0) <= 1.0 - LESS_DIVERSE_RATIO,
        "near_copies_not_above_real": row["near_copy_share"] <= row["real_near_copy_share"],
        "no_collapse_warning": row["collapse_warnings"] == 0,
    }


def table(rows: dict, bar_results: dict) -> str:
    def number(value, fmt):
        return "n/a" if value is None else format(value, fmt)

    lines = ["| preset | steps | train min | KID (of generator.keras; `best`: generator_best.keras, its step) | KID best in training (step) | diversity vs real "
             "| recall (held-out real) | coverage (held-out real) | near-copies (real) | collapse warnings "
             "| AUC real / +generated / generated only |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for preset, r in rows.items():
        lines.append(
            f"| {preset} | {r['steps']} | {r['wall_time_min']:.0f} | {r['kid']:.3f} ± {r['kid_std']:.3f}"
            + (f" (best, {r['generator_step']})" if r.get("generator") == "best" else "") + " "
            f"| {r['best_training_kid']:.3f} ({r['best_training_kid_step']}) | {r['diversity_ratio']:.0%} "
            f"| {r['recall_matched']:.2f} ({r['recall_held_out']:.2f}) | {r['coverage_matched']:.2f} ({r['coverage_held_out']:.2f}) "
            f"| {r['near_copy_share']:.1%} ({r['real_near_copy_share']:.1%}) | {r['collapse_warnings']} "
            f"| {number(r['auc_real'], '.3f')} / {number(r['auc_real_plus_generated'], '.3f')} "
            f"/ {number(r['auc_generated_only'], '.3f')} |")
    if bar_results:
        lines.append("")
        lines += [f"- {name}: {value}" for name, value in bar_results.items()]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="", help="folder with yes/ and no/; default: download from Kaggle")
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--presets", default=",".join(PRESETS))
    parser.add_argument("--only", default="", help="train and evaluate this one preset, no table")
    parser.add_argument("--table-only", action="store_true")
    parser.add_argument("--compare", nargs="+", default=[],
                        help="the table and figures of finished --only runs, one --out folder each, labelled by folder")
    parser.add_argument("--feature-extractor", default="auto")
    parser.add_argument("--out", default="outputs/quality")
    add_record_option(parser, "the table and figures")
    parser.add_argument("--precision", default="auto", help="how the step is computed (docs/hardware.md)")
    parser.add_argument("--xla", default="auto")
    parser.add_argument("--speed-layers", default="auto")
    parser.add_argument("--set", type=setting, action="append", default=[], metavar="NAME=VALUE",
                        help="a training setting over the preset's, e.g. --set reuse_fakes=False (config.json records it)")
    args = parser.parse_args(argv)
    if args.steps % STEPS_PER_EPOCH:
        parser.error(f"--steps must be a multiple of {STEPS_PER_EPOCH}")
    presets = [args.only] if args.only else args.presets.split(",")
    unknown = sorted(set(presets) - set(PRESETS))
    if unknown:
        parser.error(f"unknown preset(s) {unknown}; known: {sorted(PRESETS)}")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    if not args.table_only and not args.compare:
        for preset in presets:
            run_preset(preset, args)
    summary_out = start_record(args.record, "quality", f"Quality: {', '.join(args.compare) or args.presets}") \
        if args.record else Path(args.out)
    if args.compare:
        runs = {Path(folder).name: run_dir for folder in args.compare for run_dir in sorted((Path(folder) / "runs").iterdir())}
        result = summarise(runs, summary_out, args.seed)
    elif not args.only:
        result = summarise({preset: run_path(preset_config(preset, args)) for preset in presets}, summary_out, args.seed)
    if args.record and (args.compare or not args.only):
        finish_record(summary_out, table(result["rows"], result["bars"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
