"""`python -m gan_lib.scripts.bench_streaming`: a large phantom training set (20,000 slices at 64 px
by default: 328 MB as float32) trained from memory and streamed from its shards, each in a fresh
process: peak resident memory and steps/s. JSON in outputs/bench/streaming_<cpu>_<images>.json.

    python -m gan_lib.scripts.bench_streaming [--images 20000] [--steps 1000] [--budget-mb 64]

The phantom set is written and prepared once under --out (about 10 min on 2 cores) and reused.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from gan_lib.base.files import write_json
from gan_lib.base.hardware import cpu_facts
from gan_lib.base.paths import PROJECT_ROOT
from gan_lib.config import GANConfig
from gan_lib.data.storage import processed_path
from gan_lib.records.run import read_run_record
from gan_lib.scripts.results import add_record_option, finish_record, start_record

RATE_FROM_STEP = 100  # steps/s from the history after this step: compilation and warm-up excluded


def data_cfg(args) -> GANConfig:
    return GANConfig.from_overrides(data_source="local", data_dir=str(args.out / "raw"), data_root=str(args.out / "data"),
                                    image_size=args.image_size, holdout=0.02, memory_budget_mb=args.budget_mb)


def prepare(args) -> None:
    """The phantom's files, then the dataset (its training split over the budget, so also shards)."""
    from gan_lib.data.phantom import PhantomSpec, write_phantom_dataset
    from gan_lib.data.prepare import prepare_dataset
    from gan_lib.data.sources import fetch_raw
    from gan_lib.data.storage import save_processed

    cfg = data_cfg(args)
    if processed_path(cfg).exists():
        return
    if not (args.out / "raw" / "phantom.json").exists():
        print(f"writing {args.images} SYNTHETIC phantom slices to {args.out / 'raw'} ...", flush=True)
        write_phantom_dataset(args.out / "raw", PhantomSpec(n_yes=args.images, n_no=20, duplicate_fraction=0.0))
    save_processed(prepare_dataset(cfg, fetch_raw(cfg)), processed_path(cfg), memory_budget_mb=args.budget_mb)


def train_child(args, mode: str) -> dict:
    """Train in this process (`--child`): the run's steps/s from its history, and its peak RSS."""
    from gan_lib.runs.logs import load_history
    from gan_lib.training.loop import train

    cfg = GANConfig.from_overrides(**{**data_cfg(args).to_dict(), "run_name": mode, "output_root": str(args.out / "runs"),
                                      "epochs": 1, "steps_per_epoch": args.steps, "checkpoint_every": args.steps,
                                      "kid_every": 0, "log_every": 10, "resume": False,
                                      "memory_budget_mb": args.budget_mb if mode == "streamed" else 1e6})
    run_dir = train(cfg)
    rows = [r for r in load_history(run_dir) if r["step"] >= RATE_FROM_STEP]
    rate = (rows[-1]["step"] - rows[0]["step"]) / (rows[-1]["wall_time_s"] - rows[0]["wall_time_s"])
    effective = read_run_record(run_dir).effective
    return {"steps_per_s": rate, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "training_data": effective["training_data"], "train_images": effective["train_images"],
            "engine": effective["engine"]["engine"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--budget-mb", type=float, default=64.0, help="memory budget of the streamed run")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "outputs" / "bench_streaming")
    parser.add_argument("--prepare-only", action="store_true", help="write and prepare the phantom set, train nothing")
    add_record_option(parser, "the JSON")
    parser.add_argument("--child", choices=["memory", "streamed"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print("RESULT " + json.dumps(train_child(args, args.child)), flush=True)
        return 0
    prepare(args)
    if args.prepare_only:
        return 0
    shutil.rmtree(args.out / "runs", ignore_errors=True)
    results = {}
    for mode in ("memory", "streamed"):  # each in a fresh process: peak RSS is per process
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "gan_lib.scripts.bench_streaming", "--child", mode,
                               *sum(([f"--{k.replace('_', '-')}", str(v)] for k, v in vars(args).items()
                                     if k not in ("child", "prepare_only")), [])], capture_output=True, text=True, check=True)
        results[mode] = {**json.loads(done.stdout.split("RESULT ", 1)[1]), "seconds": time.perf_counter() - started}
    cpu = cpu_facts()
    train_images = results["memory"]["train_images"]
    dataset_mb = train_images * args.image_size**2 * 4 / 1e6
    summary = {"cpu": cpu, "phantom_images": args.images, "train_images": train_images, "image_size": args.image_size,
               "train_mb_float32": dataset_mb,
               "steps": args.steps, "budget_mb": args.budget_mb, "runs": results,
               "speed_ratio_streamed_to_memory": results["streamed"]["steps_per_s"] / results["memory"]["steps_per_s"]}
    name = f"streaming_{re.sub(r'[^A-Za-z0-9]+', '_', cpu['model']).strip('_')}_{args.images}.json"
    folder = start_record(args.record, "benchmark", f"Streamed training, {cpu['model']}") if args.record \
        else PROJECT_ROOT / "outputs" / "bench"
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, summary)
    table = [f"{cpu['model']}; {train_images} training images at {args.image_size} px ({dataset_mb:.0f} MB float32)",
             "", "| run | steps/s | peak RSS MB | how |", "|---|---|---|---|"]
    table += [f"| {mode} | {r['steps_per_s']:.2f} | {r['peak_rss_mb']:.0f} | {r['training_data']} |"
              for mode, r in results.items()]
    table.append(f"\nstreamed / in memory: {summary['speed_ratio_streamed_to_memory']:.2f}x steps/s")
    print("\n".join(table) + f"; JSON: {path}")
    if args.record:
        finish_record(folder, "\n".join(table) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
