"""How this machine computes the training step (`Engine`): the precision by its hardware, and on a
CPU the layers and the XLA mode by measuring them here.

The same step runs 0.7x to 2.3x the report's loop on one machine depending on these choices, and the
fastest choice differs between CPUs (docs/hardware.md), so on a CPU each "auto" setting is decided by
timing the candidates for a few steps at start-up. The result is cached per machine and settings
(`speed_choices.json` under the user's cache folder), so only the first run of a kind pays for it.
GPUs and TPUs use the stock layers and whole-step XLA (not measured here: no accelerator). Under a
tf.distribute strategy (gan_lib.training.strategies) see `candidate_engines`. `training_speed` is
the chosen step's speed on this runtime, and the schedule's time at it, before committing to hours.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from ..base.files import write_json
from ..base.hardware import cpu_facts, fast_bfloat16
from ..base.progress import PACE_STEPS, duration, print_above_bar
from ..config import GANConfig
from .engine import Engine
from .step import GANTrainer
from .strategies import make_strategy

TUNE_WARMUP, TUNE_STEPS, TUNE_ROUNDS = 2, 3, 2  # per candidate; rounds alternate between candidates
# Settings that change the step's work, so a measurement for one does not hold for another.
STEP_SHAPE = ("arch", "image_size", "batch_size", "noise_dim", "classes", "loss", "augment", "minibatch_stddev",
              "r1_gamma", "r1_every", "reuse_fakes", "mirror", "symmetry_channel", "ema_decay", "label_every_block",
              "mismatched_labels")


def device_facts() -> dict:
    """The accelerators TensorFlow sees (with a GPU's compute capability) and the CPU."""
    gpus = tf.config.list_physical_devices("GPU")
    capability = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability") if gpus else None
    return {"accelerators": sorted({d.device_type for d in tf.config.list_physical_devices()} & {"GPU", "TPU"}),
            "gpu_compute_capability": list(capability) if capability else None, "cpu": cpu_facts()}


def choose_precision(requested: str, facts: dict) -> dict:
    """The Keras precision policy: `requested`, or for "auto" the fastest the hardware computes
    natively: bfloat16 on a TPU, a GPU from Ampere on (compute capability 8) or a CPU with AMX or
    AVX-512-BF16; float16 with loss scaling on older GPUs; float32 elsewhere. Variables, losses, R1
    and the EMA stay float32 under every policy (Keras mixed policies)."""
    if requested != "auto":
        slow = requested == "mixed_float16" and not facts["accelerators"]
        return {"policy": requested, "reason": "as set" + (" (float16 is emulated on a CPU: slow)" if slow else "")}
    if "TPU" in facts["accelerators"]:
        return {"policy": "mixed_bfloat16", "reason": "auto: TPU (native bfloat16)"}
    if "GPU" in facts["accelerators"]:
        capability = facts["gpu_compute_capability"] or [0, 0]
        if capability[0] >= 8:
            return {"policy": "mixed_bfloat16", "reason": f"auto: GPU of compute capability {capability[0]}.{capability[1]} (bfloat16 tensor cores)"}
        return {"policy": "mixed_float16", "reason": f"auto: GPU of compute capability {capability[0]}.{capability[1]} (float16 tensor cores, no fast bfloat16)"}
    cpu = facts["cpu"]
    if fast_bfloat16(cpu):
        native = [f for f in ("amx_bf16", "avx512_bf16") if f in cpu["features"]]
        return {"policy": "mixed_bfloat16", "reason": f"auto: CPU with {'/'.join(native)} (native bfloat16)"}
    return {"policy": "float32", "reason": "auto: CPU without native bfloat16 (no AMX or AVX-512-BF16)"}


def candidate_engines(cfg: GANConfig, precision: str, facts: dict, strategy=None) -> list[Engine]:
    """The engines the settings allow: one if nothing is "auto" or on a GPU/TPU, else each
    combination of the "auto" choices, to be measured. Under a strategy the step is not XLA-compiled
    (its all-reduce runs outside XLA; a TPU compiles everything itself), and a multi-worker run
    takes the stock layers by rule: its workers must not measure their way to different steps."""
    accelerated = bool(facts["accelerators"])
    by_rule = accelerated or cfg.strategy == "multiworker"
    layers = {"on": [True], "off": [False], "auto": [False] if by_rule else [True, False]}[cfg.speed_layers]
    if strategy is None:
        xla = {"on": ["whole"], "off": ["none"], "auto": ["whole"] if accelerated else ["whole", "updates"]}[cfg.xla]
    elif cfg.strategy == "tpu":
        xla = ["whole"]
    elif cfg.xla == "on":
        raise ValueError(f"xla='on' with strategy={cfg.strategy!r}: the step's all-reduce runs outside XLA here; "
                         "use xla='auto' or 'off'")
    else:
        xla = ["none"]
    return [Engine(precision, speed, mode) for speed, mode in itertools.product(layers, xla)]


def cache_path() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gan_lib" / "speed_choices.json"


def read_cache(path: Path) -> dict:
    """The cached measurements; a cache that cannot be read is measured anew, never a reason to stop."""
    try:
        cache = json.loads(path.read_text()) if path.exists() else {}
        if not isinstance(cache, dict):
            raise ValueError("not a JSON object")
        return cache
    except (OSError, ValueError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        print_above_bar(f"WARNING: the speed cache {path} is unreadable ({err}): measuring again; it will be rewritten")
        return {}


def choose_engine(cfg: GANConfig, images: np.ndarray, labels: np.ndarray | None = None,
                  strategy: tf.distribute.Strategy | None = None) -> tuple[Engine, dict]:
    """This machine's engine for `cfg`'s step (on `strategy`'s replicas, if given), and the record
    of why (for config.json): the precision by hardware, then the fastest of the candidate engines,
    measured once per machine and settings and cached."""
    facts = device_facts()
    if cfg.strategy == "tpu":  # a Colab TPU node's cores are not devices of this machine's own
        facts["accelerators"] = sorted({*facts["accelerators"], "TPU"})
    precision = choose_precision(cfg.precision, facts)
    candidates = candidate_engines(cfg, precision["policy"], facts, strategy)
    record = {"precision": precision, "device": facts}
    if len(candidates) == 1:
        engine = candidates[0]
        auto = [name for name in ("xla", "speed_layers") if getattr(cfg, name) == "auto"]
        where = "/".join(facts["accelerators"]) or cfg.strategy
        how = (f"{where}: {' and '.join(auto)} by rule ({'speed' if engine.speed_layers else 'stock'} layers, XLA "
               f"{engine.xla}; not measured)" if auto else "as set")
        return engine, {**record, "engine": vars(engine), "how": how}
    replicas = strategy.num_replicas_in_sync if strategy is not None else 1
    key = json.dumps({"cpu": facts["cpu"], "tensorflow": tf.__version__, "precision": precision["policy"],
                      "candidates": [vars(c) for c in candidates], **{k: getattr(cfg, k) for k in STEP_SHAPE},
                      **({"strategy": cfg.strategy, "replicas": replicas} if strategy is not None else {})},
                     sort_keys=True)
    path = cache_path()
    cache = read_cache(path)
    if key not in cache:
        cache[key] = measure(cfg, images, labels, candidates, strategy)
        how = "measured now"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_json(path, cache)
        except OSError as err:
            print_above_bar(f"WARNING: the speed cache {path} cannot be written ({err.strerror or err}): the next run measures again")
            how += " (not cached)"
    else:
        how = f"measured before on this machine ({path})"
    rates = cache[key]
    best = max(candidates, key=lambda c: rates[engine_name(c)])
    print_above_bar(f"speed: {engine_name(best)} ({rates[engine_name(best)]:.2f} steps/s; "
                    + ", ".join(f"{name} {rate:.2f}" for name, rate in rates.items() if name != engine_name(best)) + f"), {how}")
    return best, {**record, "engine": vars(best), "how": how, "steps_per_s": rates}


def engine_name(engine: Engine) -> str:
    return f"{engine.precision}, {'speed' if engine.speed_layers else 'stock'} layers, XLA {engine.xla}"


def lazy_r1(cfg: GANConfig) -> bool:
    """R1 on some steps only: the step then comes compiled twice, with R1 and without."""
    return cfg.r1_gamma > 0 and cfg.r1_every > 1


def measure(cfg: GANConfig, images: np.ndarray, labels: np.ndarray | None, candidates: list[Engine],
            strategy: tf.distribute.Strategy | None = None) -> dict:
    """Steps/s of each candidate on these images: compiled and warmed up, then timed in rounds
    that alternate between them (a change in the machine's load hits all alike); the median. With
    lazy R1 (r1_every > 1) the step timed is the one without R1, the step nearly all steps take,
    so each candidate compiles one step, not two."""
    print_above_bar(f"speed: measuring {len(candidates)} ways to compute the step on this machine (once per machine and settings)")
    timed = dataclasses.replace(cfg, r1_gamma=0.0) if lazy_r1(cfg) else cfg
    steps = {engine_name(c): GANTrainer(timed, images, labels, c, strategy).compiled_step for c in candidates}
    for step in steps.values():
        for _ in range(TUNE_WARMUP):
            np.asarray(step()["d_loss"])
    rates = {name: [] for name in steps}
    for _ in range(TUNE_ROUNDS):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(TUNE_STEPS):
                out = step()
            np.asarray(out["d_loss"])
            rates[name].append(TUNE_STEPS / (time.perf_counter() - start))
    return {name: float(np.median(r)) for name, r in rates.items()}


def training_speed(cfg: GANConfig, steps: int = PACE_STEPS) -> dict:
    """What 04_train will do per second on this runtime: `cfg`'s step (its precision, XLA and the
    layers chosen for this device) on random images, compiled, then `steps` steps timed; printed
    with the time of cfg's whole schedule. A minute on a GPU runtime, before committing to hours."""
    strategy = make_strategy(cfg)
    images = np.random.default_rng(0).uniform(-1, 1, (64, cfg.image_size, cfg.image_size, 1)).astype(np.float32)
    engine, _ = choose_engine(cfg, images, strategy=strategy)
    trainer = GANTrainer(cfg, images, engine=engine, strategy=strategy)
    start = time.perf_counter()
    for _ in range(2 if lazy_r1(cfg) else 1):  # lazy R1: a step with it, one without
        np.asarray(trainer.compiled_step()["d_loss"])
    compiled = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        out = trainer.compiled_step()
    np.asarray(out["d_loss"])  # wait for the last step
    rate = steps / (time.perf_counter() - start)
    total = cfg.epochs * cfg.steps_per_epoch
    print(f"{cfg.image_size} px, batch {cfg.batch_size}; {engine_name(engine)}\n"
          f"compile {compiled:.1f} s; {rate:.2f} steps/s; the schedule ({cfg.epochs} x {cfg.steps_per_epoch:,} steps) "
          f"takes {duration(total / rate)}")
    return {"steps_per_s": rate, "compile_s": compiled, "schedule_s": total / rate, "engine": vars(engine)}
