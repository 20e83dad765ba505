"""The training engine: one compiled GAN step, and a loop that never loses more than one
checkpoint interval.

Why a plain `tf.function` loop rather than `fit()`: the report's schedule is 3750-step epochs, and a
Colab runtime can die mid-epoch; resuming at the exact step (weights, both optimisers, RNG state,
wall clock) is simple here and awkward through `fit(initial_epoch=...)`. The training images live
on the device and each step draws its batch with replacement from them (as the report sampled),
so there is no per-step host-to-device copy at all. G and D each have their own Adam, built once on
their own variables, so the report's `KeyError: optimizer cannot recognize variable` cannot happen.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import keras
import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from .augment import augment, parse_policy
from .config import EVALUATION_FIELDS, HEADLESS_ENV, GANConfig
from .data import from_unit_range, load_processed
from .models import build_models, with_stock_layers
from .plots import montage

HISTORY_FIELDS = ["epoch", "step", "d_loss", "g_loss", "d_real", "d_fake", "wall_time_s"]
SAMPLE_GRID = 5  # a 5x5 grid from one fixed noise batch, as the report saved


def progress_bar(iterable, **kwargs):
    """A live bar in Jupyter and Colab; under `make` (papermill) a plain text bar in the log,
    refreshed every 20 s, since papermill does not relay notebook widgets to the terminal."""
    if os.environ.get(HEADLESS_ENV):
        from tqdm import tqdm as text_tqdm

        return text_tqdm(iterable, file=sys.stdout, mininterval=20, ascii=True, ncols=100, **kwargs)
    return tqdm(iterable, **kwargs)


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


# ---------------------------------------------------------------------------------------------
# Losses: each returns (d_loss, g_loss) from D's outputs on real images, on fakes for D's update,
# and on fakes for G's update. D outputs probabilities (the report's sigmoid head).


def bce_losses(d_real, d_fake, d_gen):
    """The report's binary cross-entropy; G's is the non-saturating form (BCE against ones)."""
    bce = keras.losses.binary_crossentropy
    d_loss = 0.5 * (tf.reduce_mean(bce(tf.ones_like(d_real), d_real))
                    + tf.reduce_mean(bce(tf.zeros_like(d_fake), d_fake)))
    g_loss = tf.reduce_mean(bce(tf.ones_like(d_gen), d_gen))
    return d_loss, g_loss


LOSSES: dict[str, Callable] = {"bce": bce_losses}


# ---------------------------------------------------------------------------------------------


def gpu_available() -> bool:
    return bool(tf.config.list_physical_devices("GPU"))


def use_mixed_precision(cfg: GANConfig) -> bool:
    """float16 only where it helps (a GPU); on a CPU it is slower, so say so and stay in float32."""
    if cfg.mixed_precision and not gpu_available():
        print("NOTE: mixed_precision=True needs a GPU; this run trains in float32 "
              "(config.json records effective.mixed_precision=false).")
        return False
    return cfg.mixed_precision


@dataclass
class StepOutput:
    d_loss: float
    g_loss: float
    d_real: float
    d_fake: float


class GANTrainer:
    """Both models, both optimisers, the RNG and the step counter, checkpointed together."""

    def __init__(self, cfg: GANConfig, images: np.ndarray, mixed_precision: bool = False):
        if cfg.loss not in LOSSES:
            raise ValueError(f"loss={cfg.loss!r}; known losses: {sorted(LOSSES)}")
        keras.mixed_precision.set_global_policy("mixed_float16" if mixed_precision else "float32")
        keras.utils.set_random_seed(cfg.seed)  # weight initialisation and Dropout
        self.cfg = cfg
        self.loss_fn = LOSSES[cfg.loss]
        self.augment_policy = parse_policy(cfg.augment)
        self.generator, self.discriminator = build_models(cfg)
        self.g_opt = self._optimizer(cfg, mixed_precision, "g_adam")
        self.d_opt = self._optimizer(cfg, mixed_precision, "d_adam")
        self.g_opt.build(self.generator.trainable_variables)
        self.d_opt.build(self.discriminator.trainable_variables)
        self.rng = tf.random.Generator.from_seed(cfg.seed)
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.wall_time = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="wall_time_s")
        self.images = tf.constant(images, dtype=tf.float32)
        # Dropout's seed state is not among the model's weights: save it so a resume repeats no draw.
        layer_seeds = [layer.seed_generator.state for model in (self.generator, self.discriminator)
                       for layer in model.layers if hasattr(layer, "seed_generator")]
        # The moving average of G's weights, when asked for: what samples and the saved generator use.
        self.generator_ema = None
        if cfg.ema_decay > 0:
            self.generator_ema = keras.models.clone_model(self.generator)
            self.generator_ema.set_weights(self.generator.get_weights())
        extra = {"generator_ema": self.generator_ema} if self.generator_ema is not None else {}
        self.checkpoint = tf.train.Checkpoint(generator=self.generator, discriminator=self.discriminator,
                                              g_opt=self.g_opt, d_opt=self.d_opt, rng=self.rng,
                                              layer_seeds=layer_seeds, step=self.step, wall_time=self.wall_time,
                                              **extra)
        self.compiled_step = tf.function(self._train_step, jit_compile=cfg.xla)

    @staticmethod
    def _optimizer(cfg: GANConfig, mixed_precision: bool, name: str):
        adam = keras.optimizers.Adam(cfg.learning_rate, beta_1=cfg.beta_1, name=name)
        return keras.optimizers.LossScaleOptimizer(adam, name=f"{name}_scaled") if mixed_precision else adam

    @staticmethod
    def _update(tape, scaled_loss, model, optimizer):
        """Apply the gradients of a loss scaled (inside the tape) by this optimiser's `scale_loss`;
        a LossScaleOptimizer unscales them, a plain Adam's scale is 1."""
        grads = tape.gradient(scaled_loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))

    @property
    def sampling_generator(self) -> keras.Model:
        return self.generator_ema if self.generator_ema is not None else self.generator

    def _update_ema(self):
        """Move the average toward G's weights. The decay ramps up as TensorFlow's moving averages do
        (min(decay, (1 + step) / (10 + step))), so early steps are not frozen in; normalisation
        statistics are copied, not averaged (averaged from the first steps they blacken the images)."""
        step = tf.cast(self.step, tf.float32)
        decay = tf.minimum(self.cfg.ema_decay, (1.0 + step) / (10.0 + step))
        for average, live in zip(self.generator_ema.trainable_variables, self.generator.trainable_variables):
            average.assign(decay * average + (1.0 - decay) * live)
        for average, live in zip(self.generator_ema.non_trainable_variables, self.generator.non_trainable_variables):
            average.assign(live)

    def _for_discriminator(self, images):
        """What D sees: the images, augmented (the same way for real and generated) if asked."""
        if not self.augment_policy:
            return images
        return augment(images, self.rng, self.cfg.augment_p, self.augment_policy)

    def _train_step(self):
        batch, n = self.cfg.batch_size, tf.shape(self.images, out_type=tf.int64)[0]
        # Draw a real batch with replacement and noise, from the checkpointed RNG
        real = tf.gather(self.images, self.rng.uniform([batch], 0, n, dtype=tf.int64))
        noise = self.rng.normal([batch, self.cfg.noise_dim])
        # Train the discriminator on real and generated images
        with tf.GradientTape() as tape:
            fake = self.generator(noise, training=True)
            d_real = tf.cast(self.discriminator(self._for_discriminator(real), training=True), tf.float32)
            d_fake = tf.cast(self.discriminator(self._for_discriminator(fake), training=True), tf.float32)
            d_loss, _ = self.loss_fn(d_real, d_fake, d_fake)
            d_scaled = self.d_opt.scale_loss(d_loss)
        self._update(tape, d_scaled, self.discriminator, self.d_opt)
        # Train the generator through the (now updated) discriminator, on fresh noise
        noise = self.rng.normal([batch, self.cfg.noise_dim])
        with tf.GradientTape() as tape:
            fake = self._for_discriminator(self.generator(noise, training=True))
            d_gen = tf.cast(self.discriminator(fake, training=True), tf.float32)
            _, g_loss = self.loss_fn(d_real, d_fake, d_gen)
            g_scaled = self.g_opt.scale_loss(g_loss)
        self._update(tape, g_scaled, self.generator, self.g_opt)
        if self.generator_ema is not None:
            self._update_ema()
        self.step.assign_add(1)
        return {"d_loss": d_loss, "g_loss": g_loss,
                "d_real": tf.reduce_mean(d_real), "d_fake": tf.reduce_mean(d_fake)}

    def samples(self, noise: np.ndarray) -> np.ndarray:
        return np.asarray(self.sampling_generator(noise, training=False), np.float32)


# ---------------------------------------------------------------------------------------------
# The run folder


def library_versions() -> dict:
    return {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__, "opencv": cv2.__version__}


def run_record(cfg: GANConfig, manifest: dict, n_train: int, mixed_precision: bool) -> dict:
    """Everything a run resolved: settings, data identity, software and hardware."""
    data = manifest["dataset"]
    return {
        "config": cfg.to_dict(),
        "effective": {"mixed_precision": mixed_precision, "xla": cfg.xla, "train_images": n_train,
                      "total_steps": cfg.epochs * cfg.steps_per_epoch},
        "data": {"file": str(cfg.processed_path), "file_sha256": data.get("file_sha256"),
                 "synthetic": data["synthetic"], "source": data["source"], "source_detail": data["source_detail"],
                 "classes": data["classes"], "per_split": data["per_split"]},
        "versions": library_versions(),
        "device": {"gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
                   "platform": platform.platform(), "processor": platform.processor()},
    }


def check_resumable(run_dir: Path, cfg: GANConfig) -> None:
    """Refuse to continue a run folder with different settings (only `epochs` may grow)."""
    saved = json.loads((run_dir / "config.json").read_text())["config"]
    free = {"epochs", "resume", "output_root", "data_dir", "log_every", "checkpoint_every", *EVALUATION_FIELDS}
    changed = {k: (saved.get(k), v) for k, v in cfg.to_dict().items() if k not in free and saved.get(k) != v}
    if changed:
        raise ValueError(f"{run_dir} was made with other settings {changed} (saved, now); "
                         "use another run_name, or the saved settings to resume.")


def trim_history(path: Path, last_step: int) -> None:
    """Drop rows after the restored checkpoint, so a resumed run repeats no step."""
    if not path.exists():
        return
    with path.open() as f:
        rows = [r for r in csv.DictReader(f) if int(r["step"]) <= last_step]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, HISTORY_FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def save_grid(images: np.ndarray, path: Path) -> None:
    cv2.imwrite(str(path), montage(from_unit_range(images[..., 0]), ncols=SAMPLE_GRID,
                                   tile=max(images.shape[1], 64)))


# ---------------------------------------------------------------------------------------------


def train(cfg: GANConfig, stop_after_steps: int | None = None) -> Path:
    """Train (or resume) the run `cfg.run_name`; returns its folder.

    `stop_after_steps` ends the call early after that many new steps (as a dying runtime would)
    without any final save: tests use it to check resumption.
    """
    run_dir = cfg.run_dir
    ckpt_dir = run_dir / "checkpoints"
    if (run_dir / "config.json").exists():
        if not cfg.resume:
            raise FileExistsError(f"{run_dir} exists and resume=False: choose another run_name.")
        check_resumable(run_dir, cfg)
    images, _, manifest = load_processed(cfg.processed_path, "train")
    mixed = use_mixed_precision(cfg)
    trainer = GANTrainer(cfg, images, mixed)
    manager = tf.train.CheckpointManager(trainer.checkpoint, str(ckpt_dir), max_to_keep=3)
    (run_dir / "samples").mkdir(parents=True, exist_ok=True)

    z_path = run_dir / "samples" / "z_fixed.npy"
    if manager.latest_checkpoint:
        trainer.checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        print(f"Resuming {run_dir.name} from step {int(trainer.step)} ({manager.latest_checkpoint}).")
        z_fixed = np.load(z_path)
    else:
        z_fixed = np.random.default_rng(cfg.seed).standard_normal((SAMPLE_GRID**2, cfg.noise_dim)).astype(np.float32)
        np.save(z_path, z_fixed)
        save_grid(images[:SAMPLE_GRID**2], run_dir / "samples" / "reals.png")
    (run_dir / "config.json").write_text(json.dumps(run_record(cfg, manifest, len(images), mixed), indent=2))
    history_path = run_dir / "history.csv"
    trim_history(history_path, int(trainer.step))
    new_file = not history_path.exists()
    total = cfg.epochs * cfg.steps_per_epoch

    with history_path.open("a", newline="") as history_file:
        history = csv.DictWriter(history_file, HISTORY_FIELDS)
        if new_file:
            history.writeheader()
        board = tf.summary.create_file_writer(str(run_dir / "tensorboard")) if cfg.tensorboard else None
        started, base_wall, done_now = time.perf_counter(), float(trainer.wall_time), 0
        # The step is counted on the host: reading the device counter every step would wait for
        # each step to finish before the next is dispatched.
        step = int(trainer.step)
        while step < total:
            epoch = step // cfg.steps_per_epoch
            first = step - epoch * cfg.steps_per_epoch
            bar = progress_bar(range(first, cfg.steps_per_epoch), desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="step",
                       initial=first, total=cfg.steps_per_epoch)
            for _ in bar:
                out = trainer.compiled_step()
                step += 1
                done_now += 1
                if step % cfg.log_every == 0 or step % cfg.steps_per_epoch == 0:
                    values = StepOutput(**{k: float(v) for k, v in out.items()})
                    trainer.wall_time.assign(base_wall + time.perf_counter() - started)
                    if not all(np.isfinite([values.d_loss, values.g_loss])):
                        history_file.flush()
                        raise TrainingDiverged(
                            f"step {step}: d_loss={values.d_loss}, g_loss={values.g_loss}. Training stopped; the "
                            f"last good checkpoint is {manager.latest_checkpoint}.")
                    history.writerow({"epoch": epoch + 1, "step": step, **vars(values),
                                      "wall_time_s": round(float(trainer.wall_time), 3)})
                    bar.set_postfix(d_loss=f"{values.d_loss:.3f}", g_loss=f"{values.g_loss:.3f}", refresh=False)
                    if board is not None:
                        with board.as_default(step=step):
                            for name, value in vars(values).items():
                                tf.summary.scalar(name, value)
                if step % cfg.checkpoint_every == 0:
                    history_file.flush()
                    manager.save(checkpoint_number=step)
                if stop_after_steps is not None and done_now >= stop_after_steps:
                    return run_dir
            bar.close()
            save_grid(trainer.samples(z_fixed), run_dir / "samples" / f"epoch_{epoch + 1:03d}.png")
            if step % cfg.checkpoint_every:  # otherwise this step was saved just above
                history_file.flush()
                manager.save(checkpoint_number=step)
    with_stock_layers(trainer.sampling_generator).save(run_dir / "generator.keras")
    return run_dir


def load_history(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "history.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: is {run_dir} a training run folder?")
    with path.open() as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
