"""What the training step computes, written down so that a change to its code can be shown not to
change it: for every preset (and the engines that compile parts of it), the exact outputs of the
first steps, a hash of the images the trained generator then draws, and the checkpoint's variable
names (which a resume needs unchanged).

    python -m gan_lib.scripts.step_fingerprint --out before.json
    ... change the step ...
    python -m gan_lib.scripts.step_fingerprint --out after.json --against before.json

Both runs must be on the same machine: oneDNN's arithmetic differs between CPUs. Not a test.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf

from gan_lib.base.files import write_json
from gan_lib.base.hardware import cpu_facts
from gan_lib.config import DEFAULT_PRESET, PRESETS, GANConfig
from gan_lib.training.engine import Engine
from gan_lib.training.step import GANTrainer

STEPS = 17  # past step 16, where the lean preset's lazy R1 first repeats
IMAGE_SIZE, BATCH, IMAGES = 32, 4, 24


def cases() -> dict[str, tuple[str, str, Engine]]:
    """name -> (preset, classes, engine): every preset conditional (both classes), the report's GAN
    also unconditional, and the default preset under each XLA mode."""
    found = {f"{preset} both": (preset, "both", Engine()) for preset in PRESETS}
    found["report yes"] = ("report", "yes", Engine())
    for xla in ("updates", "whole"):
        found[f"{DEFAULT_PRESET} both xla={xla}"] = (DEFAULT_PRESET, "both", Engine(xla=xla))
    return found


def fingerprint(preset: str, classes: str, engine: Engine) -> dict:
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (IMAGES, IMAGE_SIZE, IMAGE_SIZE, 1)).astype(np.float32)
    labels = np.arange(IMAGES) % 2
    cfg = GANConfig.from_overrides(preset=preset, classes=classes, image_size=IMAGE_SIZE, batch_size=BATCH,
                                   data_source="phantom")
    trainer = GANTrainer(cfg, images, labels, engine=engine)
    outputs = [{name: float(value).hex() for name, value in trainer.compiled_step().items()} for _ in range(STEPS)]
    samples = trainer.samples(np.random.default_rng(1).standard_normal((8, cfg.noise_dim)).astype(np.float32))
    with tempfile.TemporaryDirectory() as folder:
        path = trainer.checkpoint.write(str(Path(folder) / "ckpt"))
        variables = sorted(name for name, _ in tf.train.list_variables(path))
    return {"outputs": outputs, "samples_sha256": hashlib.sha256(samples.tobytes()).hexdigest(),
            "checkpoint_variables": variables}


def differences(before: dict, after: dict) -> list[str]:
    found = []
    for case in sorted(set(before) | set(after)):
        if case not in before or case not in after:
            found.append(f"{case}: only in {'after' if case in after else 'before'}")
            continue
        found += [f"{case}: {part} differs" for part in before[case] if before[case][part] != after[case].get(part)]
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--against", type=Path, help="an earlier fingerprint of the same machine to compare with")
    args = parser.parse_args(argv)
    result = {name: fingerprint(*case) for name, case in cases().items()}
    write_json(args.out, {"machine": cpu_facts(), "steps": STEPS, "cases": result})
    print(f"{len(result)} cases written to {args.out}")
    if args.against is None:
        return 0
    found = differences(json.loads(args.against.read_text())["cases"], result)
    print("\n".join(found) if found else f"identical to {args.against}: every output, sample and checkpoint name")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
