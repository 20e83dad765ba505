"""Benchmark: the report's training loop against this project's step, in one process.

    python -m gan_lib.scripts.bench [--image-size 128] [--batch-size 4] [--steps 8] [--rounds 3] [--out outputs/bench]

(a) the report's loop: G.predict for the fakes, D.train_on_batch on real and on fake, then the
stacked model's train_on_batch with D frozen; (b) GANTrainer's compiled step, with and without XLA,
and with the R1 penalty (whose extra second-order work the FLOP count leaves out, so its GFLOP/s
column shows what R1 costs).
Same `report` architecture, batch and image size, timed after warm-up in alternating rounds (the
median is reported). Float32 matmuls, timed in the same rounds, are the machine's GFLOP/s
reference; each step's share of it uses FLOPs counted from the layers. Writes JSON under --out
and prints a table. Not a test: numbers vary by machine and load.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from gan_lib.config import GANConfig
from gan_lib.layers import with_stock_layers
from gan_lib.models import build_models
from gan_lib.run_folder import library_versions
from gan_lib.trainer import GANTrainer


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
    """One GAN step per batch, both loops alike: D update (G fwd, D fwd and bwd on real and fake)
    and G update (G fwd, D fwd, D input-gradients only, G bwd).

    With a full backward = 2 x forward and an input-only backward = 1 x: D update = G + 6 D,
    G update = 3 G + 2 D, per sample.
    """
    g, d = build_models(cfg)
    return cfg.batch_size * (4 * forward_flops(g) + 8 * forward_flops(d))


def matmul_step(n: int = 1024, repeats: int = 10):
    """A callable doing `repeats` float32 n x n matmuls, and the FLOPs of one call."""
    a = tf.random.normal((n, n))
    b = tf.random.normal((n, n))

    @tf.function(autograph=False)
    def run():
        out = a
        for _ in range(repeats):
            out = tf.linalg.matmul(out, b) * 1e-3  # chained, so none can be skipped
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=8, help="timed steps per variant per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--out", default="outputs/bench")
    args = parser.parse_args(argv)
    cfg = GANConfig.from_overrides(image_size=args.image_size, batch_size=args.batch_size, preset="report")
    images = np.random.default_rng(0).uniform(-1, 1, (113, cfg.image_size, cfg.image_size, 1)).astype(np.float32)
    flops = step_flops(cfg)
    matmul, matmul_flops = matmul_step()
    candidates = {
        "report loop (train_on_batch)": report_loop_step(cfg, images),
        "gan_lib step, no XLA": GANTrainer(GANConfig.from_overrides(**{**cfg.to_dict(), "xla": False}),
                                           images).compiled_step,
        "gan_lib step, XLA": GANTrainer(cfg, images).compiled_step,
        "gan_lib step, XLA, R1": GANTrainer(GANConfig.from_overrides(**{**cfg.to_dict(), "r1_gamma": 1.0}),
                                            images).compiled_step,
    }
    synced = {name: (lambda step=step: tf.nest.map_structure(np.asarray, step())) for name, step in candidates.items()}
    synced["matmul reference"] = lambda: np.asarray(matmul())
    rates = time_rounds(synced, args.steps, args.rounds, args.warmup)
    reference = rates.pop("matmul reference") * matmul_flops / 1e9
    results = {name: {"steps_per_s": rate, "gflops": rate * flops / 1e9, "share_of_matmul": rate * flops / 1e9 / reference}
               for name, rate in rates.items()}
    baseline = results["report loop (train_on_batch)"]["steps_per_s"]
    for r in results.values():
        r["speedup_vs_report"] = r["steps_per_s"] / baseline
    record = {"image_size": cfg.image_size, "batch_size": cfg.batch_size, "steps_per_round": args.steps,
              "rounds": args.rounds, "warmup_steps": args.warmup, "step_gflop": flops / 1e9, "matmul_gflops": reference,
              "results": results, "versions": library_versions()}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"train_step_{cfg.image_size}px_b{cfg.batch_size}.json"
    path.write_text(json.dumps(record, indent=2))
    print(f"\nreport architecture, {cfg.image_size}x{cfg.image_size}, batch {cfg.batch_size}; "
          f"{flops / 1e9:.2f} GFLOP per step; matmul reference {reference:.1f} GFLOP/s")
    print(f"{'variant':32s} {'steps/s':>8s} {'x report':>9s} {'GFLOP/s':>8s} {'% matmul':>9s}")
    for name, r in results.items():
        print(f"{name:32s} {r['steps_per_s']:8.3f} {r['speedup_vs_report']:9.2f} {r['gflops']:8.1f} "
              f"{100 * r['share_of_matmul']:8.1f}%")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
