"""Benchmark, end to end: how long `train` takes for a short run of `make quality`'s kind (real
images, a KID check and a checkpoint every 500 steps), per recipe and engine, in one process.

    python -m gan_lib.scripts.bench_training --data-dir DIR [--steps 1000] [--image-size 64]
                                             [--presets P1,P2] [--out outputs/bench]

Times, one after the other: the recipe and engine used before `auto` (report-ada-mbstd-r1 in
float32 with the speed layers and whole-step XLA), then each of `--presets` with `auto` twice:
from an empty speed-choice cache, paying for its first-run measurement as a first run on a machine
does, and again with that cache, as every later run of its kind on the machine. The whole `train` call is timed: engine choice, compilation, the steps, KID
checks, checkpoints and the saved generator. Not a test.
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
from pathlib import Path

from gan_lib.base.files import write_json
from gan_lib.base.hardware import cpu_facts
from gan_lib.config import DEFAULT_PRESET
from gan_lib.data.storage import ensure_processed
from gan_lib.runs.folder import library_versions
from gan_lib.scripts.quality import preset_config
from gan_lib.scripts.results import add_record_option, finish_record, start_record
from gan_lib.training.loop import train

BEFORE_AUTO = ("report-ada-mbstd-r1", "float32", "on", "on")  # preset, precision, xla, speed_layers


def timed_runs(presets: list[str]) -> dict:
    """label -> (preset, precision, xla, speed_layers, speed cache): the recipe and engine before
    `auto`, then per preset a first run with `auto` (an empty speed-choice cache) and a later one
    (the cache the first run filled)."""
    runs = {"before auto: report-ada-mbstd-r1, float32, speed layers, XLA whole": (*BEFORE_AUTO, None)}
    for preset in presets:
        label = f"{preset}{' (default)' if preset == DEFAULT_PRESET else ''}, auto"
        runs[label] = (preset, "auto", "auto", "auto", None)
        runs[f"{label}, measured before"] = (preset, "auto", "auto", "auto", label)
    return runs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="folder with yes/ and no/")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--presets", default="report-ada-mbstd-r1,report-ada-mbstd-r1-lean",
                        help="comma-separated presets, each timed as a first and as a later run")
    parser.add_argument("--out", default="outputs/bench")
    add_record_option(parser, "the JSON")
    args = parser.parse_args(argv)
    runs = timed_runs(args.presets.split(","))
    cpu = cpu_facts()
    print(f"CPU: {cpu['model']}, {cpu['cores']} logical cores, features {' '.join(cpu['features']) or 'none known'}")
    seconds = {}
    with tempfile.TemporaryDirectory() as scratch:
        labels = list(runs)
        for i, (label, (preset, precision, xla, speed_layers, cache_of)) in enumerate(runs.items()):
            cache = i if cache_of is None else labels.index(cache_of)
            os.environ["XDG_CACHE_HOME"] = str(Path(scratch) / f"cache{cache}")
            run_args = argparse.Namespace(data_dir=args.data_dir, image_size=args.image_size, seed=0, steps=args.steps,
                                          out=str(Path(scratch) / f"run{i}"), feature_extractor="random_cnn",
                                          precision=precision, xla=xla, speed_layers=speed_layers, set=[])
            cfg = preset_config(preset, run_args)
            ensure_processed(cfg)
            start = time.perf_counter()
            train(cfg)
            seconds[label] = time.perf_counter() - start
            print(f"{label}: {seconds[label]:.0f} s", flush=True)
    first = next(iter(seconds.values()))
    lines = [f"{args.steps} steps at {args.image_size} px, batch 4, end to end"]
    lines += [f"{label:75s} {s:7.0f} s  {first / s:5.2f}x" for label, s in seconds.items()]
    print("\n" + "\n".join(lines))
    out = start_record(args.record, "benchmark", f"Training end to end, {cpu['model']}") if args.record else Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^a-z0-9]+", "-", cpu["model"].lower()).strip("-")
    path = out / f"train_end_to_end_{slug}_{args.image_size}px_{args.steps}steps.json"
    write_json(path, {"cpu": cpu, "steps": args.steps, "image_size": args.image_size, "seconds": seconds,
                      "x_before_auto": {k: first / s for k, s in seconds.items()}, "versions": library_versions()})
    print(f"wrote {path}")
    if args.record:
        finish_record(out, "```\n" + "\n".join(lines) + "\n```\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
