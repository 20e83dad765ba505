"""Benchmark, per machine: the report's training loop against this project's step computed every
way gan_lib.training.engine_choice may choose, at each image size, each variant in a process of
its own (the peak resident memory is in the JSON).

    python -m gan_lib.scripts.bench [--image-size 64 128] [--batch-size 4] [--steps 16] [--rounds 3]
                                    [--precisions float32 mixed_bfloat16] [--presets P ...]
                                    [--variants all|auto] [--out outputs/bench]

(a) the report's loop exactly as it ran: float32, stock layers, G.predict for the fakes,
D.train_on_batch on real and on fake, then the stacked model's train_on_batch with D frozen;
(b) GANTrainer's step of the default recipe (the default preset: ADA, minibatch stddev, R1, EMA
on the report's models) in each precision (float32, and bfloat16 where the CPU computes it
natively) and each engine (speed or stock layers; XLA over the whole step or only the weight
updates), and the engine `precision/xla/speed_layers=auto` picks, i.e. the fastest of (b) in the
auto precision; (c) the step of each of --presets in the engines auto may choose. With
--variants auto, (a) and only the engines auto may choose.
Each variant is timed after warm-up in rounds alternating with the report's loop (the medians are
reported, and its ratio is to the report loop's rate in those same rounds), with matmuls of each
precision as the machine's GFLOP/s references; each step's share of the reference of its own
precision uses FLOPs counted from the layers for its own recipe (R1's second derivative is not
counted, so an R1 recipe's share is an underestimate). Prints the CPU, a table per size and the time of the
default schedule (epochs x steps_per_epoch); writes JSON under --out, one file per CPU and size.
Not a test: numbers vary by machine and load.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from gan_lib.base.files import write_json
from gan_lib.base.hardware import cpu_facts, fast_bfloat16
from gan_lib.base.progress import duration
from gan_lib.config import GANConfig
from gan_lib.models.architectures import build_models
from gan_lib.models.layers import with_stock_layers
from gan_lib.runs.folder import library_versions
from gan_lib.scripts.results import add_record_option, finish_record, start_record
from gan_lib.training.engine import XLA_MODES, Engine
from gan_lib.training.engine_choice import candidate_engines, choose_precision, device_facts, engine_name
from gan_lib.training.step import GANTrainer


def forward_flops(model: keras.Model) -> float:
    """FLOPs (2 x multiply-adds) of one forward pass of one sample, from the conv and dense layers."""
    total = 0.0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2DTranspose):
            _, h, w, c_in = layer.input.shape
            total += 2 * h * w * c_in * np.prod(layer.kernel_size) * layer.filters
        elif isinstance(layer, keras.layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            total += 2 * h * w * c_out * np.prod(layer.kernel_size) * layer.input.shape[-1]
        elif isinstance(layer, keras.layers.Dense):
            total += 2 * layer.input.shape[-1] * layer.units
    return float(total)


def step_flops(cfg: GANConfig) -> float:
    """One GAN step per batch: D update (G fwd, D fwd and bwd on real and fake) and G update (G fwd
    unless `reuse_fakes` reuses the D update's, D fwd, D input-gradients only, G bwd).

    With a full backward = 2 x forward and an input-only backward = 1 x: D update = G + 6 D,
    G update = 3 G + 2 D (2 G with reused fakes), per sample. R1's second derivative is not counted.
    """
    g, d = build_models(cfg)
    return cfg.batch_size * ((3 if cfg.reuse_fakes else 4) * forward_flops(g) + 8 * forward_flops(d))


def matmul_step(dtype: str, n: int = 1024, repeats: int = 10):
    """A callable doing `repeats` n x n matmuls in `dtype`, and the FLOPs of one call."""
    a = tf.cast(tf.random.normal((n, n)), dtype)
    b = tf.cast(tf.random.normal((n, n)), dtype)

    @tf.function(autograph=False)
    def run():
        out = a
        for _ in range(repeats):
            out = tf.linalg.matmul(out, b) * tf.cast(1e-3, dtype)  # chained, so none can be skipped
        return out

    return run, 2.0 * n**3 * repeats


def time_rounds(steps: dict, per_round: int, rounds: int, warmup: int) -> dict[str, float]:
    """Median steps/s of each variant over rounds that alternate between the variants, so a
    change in the machine's load during the run hits all of them alike."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    rates: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(per_round):
                step()
            rates[name].append(per_round / (time.perf_counter() - start))
    return {name: float(np.median(r)) for name, r in rates.items()}


def report_loop_step(cfg: GANConfig, images: np.ndarray):
    """The report's loop, made to run under Keras 3: separate compiles, D frozen inside the stack,
    and the stock Keras transposed convolution the report used."""
    g, d = build_models(cfg)
    g, d = with_stock_layers(g), with_stock_layers(d)
    d.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate, beta_1=cfg.beta_1), loss="binary_crossentropy")
    d.trainable = False
    z = keras.Input((cfg.noise_dim,))
    gan = keras.Model(z, d(g(z)))
    gan.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate, beta_1=cfg.beta_1), loss="binary_crossentropy")
    rng = np.random.default_rng(0)
    ones, zeros = np.ones((cfg.batch_size, 1)), np.zeros((cfg.batch_size, 1))

    def step():
        real = images[rng.integers(0, len(images), cfg.batch_size)]
        noise = rng.standard_normal((cfg.batch_size, cfg.noise_dim)).astype(np.float32)
        fake = g.predict(noise, verbose=0)
        # Keras 3 reads `trainable` when each model's train function is first traced: set it
        # before each call so D trains on its own and stays frozen inside the stacked model.
        d.trainable = True
        d.train_on_batch(real, ones)
        d.train_on_batch(fake, zeros)
        d.trainable = False
        gan.train_on_batch(rng.standard_normal((cfg.batch_size, cfg.noise_dim)).astype(np.float32), ones)

    return step


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    """The peak resident memory so far of this process (or of its largest finished child), in MB."""
    return resource.getrusage(who).ru_maxrss / 1024  # Linux reports kilobytes


def synced(step):
    """The step, waiting for its outputs: a timed step is a finished one."""
    return lambda: tf.nest.map_structure(np.asarray, step())


def auto_engines(default: GANConfig) -> list[Engine]:
    """The engines `auto` may choose for the default recipe on this machine."""
    facts = device_facts()
    return candidate_engines(default, choose_precision("auto", facts)["policy"], facts)


def variants(image_size: int, args, precisions: list[str]) -> dict[str, tuple[GANConfig, Engine]]:
    """Name -> (recipe, engine) of every variant timed against the report's loop at this size."""
    default = GANConfig.from_overrides(image_size=image_size, batch_size=args.batch_size)
    auto = auto_engines(default)
    found = {}
    every = [Engine(*choice) for choice in itertools.product(precisions, [True, False], XLA_MODES)]
    for engine in auto if args.variants == "auto" else every:
        found[engine_name(engine)] = (default, engine)
    for preset in args.presets if args.variants == "all" else []:  # other recipes, in each engine auto may choose
        for engine in auto:
            other = GANConfig.from_overrides(image_size=image_size, batch_size=args.batch_size, preset=preset)
            found[f"{preset}: {engine_name(engine)}"] = (other, engine)
    return found


def report_and_images(image_size: int, args):
    report = GANConfig.from_overrides(image_size=image_size, batch_size=args.batch_size, preset="report")
    images = np.random.default_rng(0).uniform(-1, 1, (113, image_size, image_size, 1)).astype(np.float32)
    return report, images, synced(report_loop_step(report, images))


def time_one_variant(image_size: int, args, precisions: list[str], name: str) -> dict:
    """In a process of its own (`--one-variant`): the variant timed in rounds alternating with the
    report's loop, and this process's peak memory."""
    cfg, engine = variants(image_size, args, precisions)[name]
    _, images, report_step = report_and_images(image_size, args)
    trainer = GANTrainer(cfg, images, engine=engine)
    rates = time_rounds({"report": report_step, name: synced(trainer.compiled_step)}, args.steps, args.rounds,
                        args.warmup)
    return {"steps_per_s": rates[name], "report_loop_steps_per_s": rates["report"], "peak_rss_mb": peak_rss_mb()}


def bench_size(image_size: int, args, precisions: list[str]) -> dict:
    """Every variant at one image size; the record for the JSON. Each variant is timed in a process
    of its own (all of them alive in one process held 18 GB at 128 px, more than a Colab runtime
    has, and deleting a variant does not give its memory back), in rounds alternating with
    the report's loop, whose rate in those same rounds is its baseline."""
    report, _, report_step = report_and_images(image_size, args)
    default = GANConfig.from_overrides(image_size=image_size, batch_size=args.batch_size)
    keras.mixed_precision.set_global_policy("float32")
    references = {}
    for precision in dict.fromkeys(["float32", *precisions]):  # the report loop's float32 is always one
        matmul, matmul_flops = matmul_step(precision.removeprefix("mixed_"))
        references[precision] = (lambda matmul=matmul: np.asarray(matmul()), matmul_flops)
    timed = time_rounds({"report": report_step, **{p: step for p, (step, _) in references.items()}},
                        args.steps, args.rounds, args.warmup)
    gflops = {p: timed[p] * flops / 1e9 for p, (_, flops) in references.items()}
    results = {"report loop (train_on_batch)": {"steps_per_s": timed["report"], "x_report_loop": 1.0,
                                                "precision": "float32", "preset": report.preset, "engine": None}}
    options = ["--image-size", str(image_size), "--batch-size", str(args.batch_size), "--steps", str(args.steps),
               "--rounds", str(args.rounds), "--warmup", str(args.warmup), "--variants", args.variants,
               "--precisions", *precisions, "--presets", *args.presets]
    measured = variants(image_size, args, precisions)
    for name, (cfg, engine) in tqdm(measured.items(), desc=f"{image_size} px variants", unit="variant"):
        done = subprocess.run([sys.executable, "-m", "gan_lib.scripts.bench", *options, "--one-variant", name],
                              capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"variant {name!r} failed:\n{done.stderr[-3000:]}")
        row = json.loads(done.stdout.strip().splitlines()[-1])
        results[name] = {**row, "x_report_loop": row["steps_per_s"] / row["report_loop_steps_per_s"],
                         "precision": engine.precision, "preset": cfg.preset, "engine": vars(engine)}
    for name, row in results.items():
        flops = step_flops(measured[name][0] if name in measured else report)
        row.update({"step_gflop": flops / 1e9, "gflops": row["steps_per_s"] * flops / 1e9})
        row["share_of_matmul"] = row["gflops"] / gflops[row["precision"]]
    chosen = max((engine_name(e) for e in auto_engines(default) if engine_name(e) in results),
                 key=lambda n: results[n]["x_report_loop"])
    schedule = default.epochs * default.steps_per_epoch
    baseline = results["report loop (train_on_batch)"]["steps_per_s"]
    return {"image_size": image_size, "batch_size": args.batch_size, "default_preset": default.preset,
            "step_gflop": step_flops(default) / 1e9, "matmul_gflops": gflops, "results": results, "auto_choice": chosen,
            "default_schedule": {"steps": schedule, "seconds_report_loop": schedule / baseline,
                                 "seconds_auto": schedule / (baseline * results[chosen]["x_report_loop"])},
            "peak_rss_mb": round(max(peak_rss_mb(), peak_rss_mb(resource.RUSAGE_CHILDREN))),
            "peak_rss_note": "the largest of this process and each variant's own process"}


def print_table(record: dict) -> str:
    """Print the speed table of one image size, and return it."""
    s = record["default_schedule"]
    lines = [f"{record['image_size']} px, batch {record['batch_size']}: report loop vs the default recipe's step "
             f"({record['default_preset']}); {record['step_gflop']:.1f} GFLOP per step counted; matmul "
             + ", ".join(f"{p} {g:.0f} GFLOP/s" for p, g in record["matmul_gflops"].items()),
             f"{'variant':66s} {'steps/s':>8s} {'x report':>9s} {'% matmul':>9s}"]
    for name, r in record["results"].items():
        mark = "  <- auto" if name == record["auto_choice"] else ""
        lines.append(f"{name:66s} {r['steps_per_s']:8.3f} {r['x_report_loop']:9.2f} {100 * r['share_of_matmul']:8.1f}%{mark}")
    lines.append(f"default schedule ({s['steps']:,} steps): report loop {duration(s['seconds_report_loop'])}, "
                 f"auto choice {duration(s['seconds_auto'])}; peak resident memory {record['peak_rss_mb'] / 1024:.1f} GB")
    text = "\n".join(lines)
    print("\n" + text)
    return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=16, help="timed steps per variant per round (16: one lazy-R1 step each)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--precisions", nargs="+", default=None,
                        help="default: float32, and mixed_bfloat16 on a CPU with AMX or AVX-512-BF16")
    parser.add_argument("--presets", nargs="*", default=["report-ada-mbstd-r1-lean"],
                        help="other recipes to time, in the engines auto may choose")
    parser.add_argument("--variants", choices=["all", "auto"], default="all",
                        help="auto: only the report loop and the engines auto may choose for the default recipe (on the "
                             "AMX machine at 128 px the auto step ran 11 %% slower in the rotation of all 17 than of 5)")
    parser.add_argument("--out", default="outputs/bench")
    parser.add_argument("--one-variant", help=argparse.SUPPRESS)  # a child process: time this variant, print JSON
    add_record_option(parser, "the JSON")
    args = parser.parse_args(argv)
    cpu = cpu_facts()
    precisions = args.precisions or ["float32"] + (["mixed_bfloat16"] if fast_bfloat16(cpu) else [])
    if args.one_variant:
        print(json.dumps(time_one_variant(args.image_size[0], args, precisions, args.one_variant)))
        return 0
    print(f"CPU: {cpu['model']}, {cpu['cores']} logical cores, features {' '.join(cpu['features']) or 'none known'}")
    out = start_record(args.record, "benchmark", f"Training step speed, {cpu['model']}") if args.record else Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tables = []
    slug = re.sub(r"[^a-z0-9]+", "-", cpu["model"].lower()).strip("-")
    for image_size in args.image_size:
        record = {"cpu": cpu, **bench_size(image_size, args, precisions), "variants": args.variants,
                  "steps_per_round": args.steps,
                  "rounds": args.rounds, "warmup_steps": args.warmup, "versions": library_versions()}
        tables.append(print_table(record))
        variants = "" if args.variants == "all" else f"_{args.variants}_only"
        path = out / f"train_step_{slug}_{image_size}px_b{args.batch_size}{variants}.json"
        write_json(path, record)
        print(f"wrote {path}")
    if args.record:
        finish_record(out, "```\n" + "\n\n".join(tables) + "\n```\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
