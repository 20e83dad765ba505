"""Images from a trained run's saved generator, each reproducible from (seed, index) alone.

    python -m gan_lib generate --run outputs/runs/<name> --n 500 --out DIR [--seed 0] [--upscale 256] [--generator best]

Image i's noise is `noise_for(seed, i)`, a generator of its own, so any single image can be made
again without the others; `images.csv` lists file, seed and index, `noise.npy` the vectors. Every
PNG says it is synthetic in its own text chunks, so it still does once it leaves this folder.
"""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import keras
import numpy as np

from ..base.files import replacing, write_json
from ..config import GENERATOR_FILES
from ..data.images import from_unit_range, synthetic_marks, write_png
from ..records.evaluation import read_best, read_final_step
from ..records.run import read_run_record
from .logs import load_history


def load_generator(run_dir: Path, which: str = "final") -> keras.Model:
    """The run's saved generator `which` (final: generator.keras, best: generator_best.keras), with
    stock Keras layers: in eager inference they are faster here (500 images at 128 px: 27 s) than
    gan_lib's training layers (35 s)."""
    path = Path(run_dir) / GENERATOR_FILES[which]
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: " + (
            "the run has not finished (train it to the end, or resume it with the same run_name)." if which == "final"
            else "no quality check has picked one yet (kid_every=0, or no check from best_from_step on); "
                 "which_generator='final' takes generator.keras."))
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as err:  # noqa: BLE001 - Keras reports a damaged file in several ways
        raise ValueError(f"{path} is damaged and cannot be loaded ({type(err).__name__}); " + (
            "run 04_train again with this run_name: it writes generator.keras anew from the last checkpoint."
            if which == "final" else "which_generator='final' takes generator.keras.")) from None


def generator_step(run_dir: Path, which: str = "final") -> int:
    """The step the saved generator `which` was saved at: best.json's for the best; generator.json's
    for generator.keras (the schedule's end, or an early stop), or in a folder trained before
    generator.json the last logged step (generator.keras's, unless a resume to a longer schedule
    was interrupted)."""
    if which == "best":
        return read_best(run_dir).step
    step = read_final_step(run_dir)
    return int(load_history(run_dir)[-1]["step"]) if step is None else step


def noise_for(seed: int, index: int, noise_dim: int) -> np.ndarray:
    return np.random.default_rng([seed, index]).standard_normal(noise_dim).astype(np.float32)


def takes_label(generator: keras.Model) -> bool:
    """A class-conditional generator takes (noise, label)."""
    return len(generator.inputs) == 2


def noise_dim(generator: keras.Model) -> int:
    return generator.inputs[0].shape[-1]


def classes_of(generator: keras.Model) -> int:
    """How many classes a conditional generator makes: the rows of its label embedding."""
    return next((layer.input_dim for layer in generator.layers if isinstance(layer, keras.layers.Embedding)), 2)


def default_labels(start: int, n: int, n_classes: int = 2) -> np.ndarray:
    """Labels when none are asked for: image i is of class i mod n_classes, so as many of each
    (two classes: image i is tumour (1) if i is odd)."""
    return ((start + np.arange(n)) % n_classes).astype(np.int32)


def _run(generator: keras.Model, noise: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return np.asarray(generator([noise, labels] if takes_label(generator) else noise, training=False))


def generate(generator: keras.Model, n: int, seed: int, start: int = 0, batch: int = 64,
             label: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(images in [-1, 1] of shape (n, H, W, 1), their noise vectors) for indices start..start+n-1.
    A conditional generator makes class `label` (1 = tumour), or with None `default_labels`."""
    if label is not None and not takes_label(generator):
        raise ValueError(f"label={label}: this generator is not class-conditional (it makes one kind of image)")
    if label is not None and not 0 <= label < classes_of(generator):
        raise ValueError(f"label={label}: this generator makes classes 0 to {classes_of(generator) - 1}")
    dim = noise_dim(generator)
    noise = np.stack([noise_for(seed, start + i, dim) for i in range(n)]) if n else np.zeros((0, dim), np.float32)
    labels = np.full(n, label, np.int32) if label is not None else default_labels(start, n, classes_of(generator))
    images = [_run(generator, noise[i:i + batch], labels[i:i + batch]) for i in range(0, n, batch)]
    side = generator.output_shape[1]
    return (np.concatenate(images) if images else np.zeros((0, side, side, 1), np.float32)), noise


def interpolate(generator: keras.Model, seed: int, start: int, end: int, steps: int = 8) -> np.ndarray:
    """Images along the great circle between the noise of images `start` and `end` (slerp: the
    norm of Gaussian noise stays typical, unlike a straight line); a conditional generator keeps
    image `start`'s default label."""
    dim = noise_dim(generator)
    a, b = noise_for(seed, start, dim), noise_for(seed, end, dim)
    omega = np.arccos(np.clip(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)), -1, 1))
    t = np.linspace(0, 1, steps)[:, None]
    path = (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)
    return _run(generator, path.astype(np.float32), np.repeat(default_labels(start, 1, classes_of(generator)), steps))


def run_source(run_dir: Path, which: str = "final") -> dict:
    """What a generated image's text chunk names: the run, its preset and seed, which saved
    generator made it and the step that generator was saved at."""
    record = read_run_record(run_dir)
    return {"run": Path(run_dir).resolve().name, "preset": record.preset, "run_seed": record.config["seed"],
            "generator": which, "step": generator_step(run_dir, which)}


def write_images(run_dir: Path, n: int, out: Path, seed: int = 0, upscale: int = 0, label: int | None = None,
                 which: str = "final", batch: int = 256) -> Path:
    """PNG files (at the training size, or `upscale` px with bicubic interpolation), each marked
    synthetic in its text chunks (`gan_lib.data.images.png_text`), images.csv and noise.npy in `out`;
    returns `out`. `label` picks the class of a conditional generator, `which` the saved generator.
    Images are made and written `batch` at a time, so a large `n` does not have to fit in memory."""
    generator = load_generator(run_dir, which)
    conditional = takes_label(generator)
    source = run_source(run_dir, which)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    noise = np.zeros((n, noise_dim(generator)), np.float32)
    with replacing(out / "images.csv", newline="") as f:  # it appears whole, once every image is written
        rows = csv.writer(f)
        rows.writerow(["file", "synthetic", "run", "generator", "step", "seed", "index"] + (["label"] if conditional else []))
        for start in range(0, n, batch):
            images, noise[start:start + batch] = generate(generator, min(batch, n - start), seed, start, label=label)
            labels = np.full(len(images), label) if label is not None else \
                default_labels(start, len(images), classes_of(generator))
            for i, image in enumerate(from_unit_range(images[..., 0]), start):
                if upscale:
                    image = cv2.resize(image, (upscale, upscale), interpolation=cv2.INTER_CUBIC)
                name = f"gen_{seed}_{i:05d}.png"
                image_label = [int(labels[i - start])] if conditional else []
                write_png(out / name, image, synthetic_marks({**source, "seed": seed, "index": i,
                                                               "label": image_label[0] if image_label else None}))
                rows.writerow([name, "yes", source["run"], which, source["step"], seed, i] + image_label)
    np.save(out / "noise.npy", noise)
    write_json(out / "source.json", {"run": str(Path(run_dir).resolve()), "n": n, "seed": seed, "upscale": upscale,
                                      "label": label, "noise": "gan_lib.runs.generate.noise_for", **source})
    return out
