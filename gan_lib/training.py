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

from .augment import ADA_SPEED_IMAGES, augment, parse_policy
from .colab import workspace_root
from .config import EVALUATION_FIELDS, HEADLESS_ENV, PROJECT_ROOT, GANConfig, recorded_settings
from .data import from_unit_range, load_processed
from .models import ARCHITECTURES, build_models, is_conditional, with_stock_layers
from .monitor import HEALTH_FIELDS, QualityMonitor
from .phantom import SYNTHETIC_LABEL
from .plots import banner, montage

HISTORY_FIELDS = ["epoch", "step", "d_loss", "g_loss", "d_real", "d_fake", "d_acc_real", "d_acc_fake", "augment_p",
                  "wall_time_s"]
SAMPLE_GRID = 5  # a 5x5 grid from one fixed noise batch, as the report saved
PACE_STEPS = 20  # steps timed after compilation for the speed and ETA line


def progress_bar(**kwargs):
    """A live bar in Jupyter and Colab; under `make` (papermill) a plain text bar in the log,
    refreshed every 20 s, since papermill does not relay notebook widgets to the terminal."""
    if os.environ.get(HEADLESS_ENV):
        from tqdm import tqdm as text_tqdm

        return text_tqdm(file=sys.stdout, mininterval=20, ascii=True, ncols=100, **kwargs)
    return tqdm(**kwargs)


def say(message: str) -> None:
    """Print above a running progress bar instead of onto its line."""
    tqdm.write(message, file=sys.stdout)
    sys.stdout.flush()


def duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{max(seconds, 0) / 60:.1f} min"


class Pace:
    """The speed this session trains at, without the compilation: the first step compiles (its time
    is reported apart), the next PACE_STEPS are timed, then one line gives steps/s and the ETA."""

    def __init__(self, first_step: int, total: int):
        self.first_step, self.total = first_step, total
        self.started = time.perf_counter()
        self.compiled_at: float | None = None
        self.reported = False

    def tick(self, step: int) -> None:
        now = time.perf_counter()
        if self.reported:
            return
        if self.compiled_at is None:
            self.compiled_at = now
            say(f"compiled the training step and ran it once in {now - self.started:.1f} s")
        elif step - self.first_step - 1 == PACE_STEPS or (step == self.total and step - self.first_step > 1):
            timed = step - self.first_step - 1
            rate = timed / (now - self.compiled_at)
            self.reported = True
            say(f"speed here: {rate:.2f} steps/s after compilation ({timed} steps timed); the whole schedule of "
                f"{self.total:,} steps takes {duration(self.total / rate)}, the {self.total - step:,} left "
                f"{duration((self.total - step) / rate)}")


def choose_layers(device_types: list[str]) -> dict:
    """The CPU speed layers (Phase*, NarrowConv2D) where their gain was measured, a CPU; the stock
    Keras layers on a GPU or TPU, where it was not. Recorded in config.json."""
    accelerators = sorted({d for d in device_types if d in ("GPU", "TPU")})
    if accelerators:
        return {"speed_layers": False, "reason": f"stock Keras layers on {'/'.join(accelerators)}: the speed "
                "layers' gain was measured on a CPU only (spectral-norm layers keep their phase gradient)"}
    return {"speed_layers": True, "reason": "CPU: PhaseConv2DTranspose, PhaseGradConv2D and NarrowConv2D, "
            "measured faster than the stock layers on a CPU (README, Speed)"}


def device_types() -> list[str]:
    return [d.device_type for d in tf.config.list_physical_devices()]


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


# ---------------------------------------------------------------------------------------------
# Losses: each returns (d_loss, g_loss) from D's outputs on real images, on fakes for D's update,
# and on fakes for G's update. D outputs probabilities (the report's sigmoid head) or logits.


def bce_losses(d_real, d_fake, d_gen, from_logits: bool):
    """The report's binary cross-entropy; G's is the non-saturating form (BCE against ones)."""
    def bce(target, output):
        return tf.reduce_mean(keras.losses.binary_crossentropy(target, output, from_logits=from_logits))

    d_loss = 0.5 * (bce(tf.ones_like(d_real), d_real) + bce(tf.zeros_like(d_fake), d_fake))
    return d_loss, bce(tf.ones_like(d_gen), d_gen)


def hinge_losses(d_real, d_fake, d_gen, from_logits: bool):
    """Hinge loss (Lim & Ye 2017; SAGAN, BigGAN): D stops pushing an image once it is past its
    margin, so it cannot drive its outputs to the extremes the report's D reached. On logits only
    (GANTrainer refuses it for a sigmoid D)."""
    d_loss = 0.5 * (tf.reduce_mean(tf.nn.relu(1.0 - d_real)) + tf.reduce_mean(tf.nn.relu(1.0 + d_fake)))
    return d_loss, -tf.reduce_mean(d_gen)


LOSSES: dict[str, Callable] = {"bce": bce_losses, "hinge": hinge_losses}


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
    d_real: float  # mean probability D gives real images (sigmoid of its logit)
    d_fake: float
    d_acc_real: float  # share of real images D calls real (ADA's overfitting signal)
    d_acc_fake: float
    augment_p: float


class GANTrainer:
    """Both models, both optimisers, the RNG and the step counter, checkpointed together."""

    def __init__(self, cfg: GANConfig, images: np.ndarray, mixed_precision: bool = False,
                 labels: np.ndarray | None = None, speed_layers: bool = True):
        if cfg.loss not in LOSSES:
            raise ValueError(f"loss={cfg.loss!r}; known losses: {sorted(LOSSES)}")
        keras.mixed_precision.set_global_policy("mixed_float16" if mixed_precision else "float32")
        keras.utils.set_random_seed(cfg.seed)  # weight initialisation and Dropout
        self.cfg = cfg
        self.loss_fn = LOSSES[cfg.loss]
        self.augment_policy = parse_policy(cfg.augment)
        self.generator, self.discriminator = build_models(cfg)  # an unknown arch raises here
        if not speed_layers:
            self.generator, self.discriminator = with_stock_layers(self.generator), with_stock_layers(self.discriminator)
        self.d_logits = ARCHITECTURES[cfg.arch].d_logits
        if cfg.loss == "hinge" and not self.d_logits:
            raise ValueError(f"loss='hinge' needs a discriminator that outputs logits; arch={cfg.arch!r} "
                             "ends in a sigmoid. Use loss='bce'.")
        self.g_opt = self._optimizer(cfg, mixed_precision, "g_adam")
        self.d_opt = self._optimizer(cfg, mixed_precision, "d_adam")
        self.g_opt.build(self.generator.trainable_variables)
        self.d_opt.build(self.discriminator.trainable_variables)
        self.rng = tf.random.Generator.from_seed(cfg.seed)
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.wall_time = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="wall_time_s")
        # Augmentation probability (moved by ADA when ada_target > 0) and D's running accuracy on reals
        self.augment_p = tf.Variable(cfg.augment_p if self.augment_policy else 0.0, dtype=tf.float32, trainable=False, name="augment_p")
        self.real_accuracy = tf.Variable(0.5, dtype=tf.float32, trainable=False, name="real_accuracy")
        self.images = tf.constant(images, dtype=tf.float32)
        self.conditional = is_conditional(cfg)
        if self.conditional and labels is None:
            raise ValueError(f"arch={cfg.arch!r} with classes='both' is class-conditional: pass the labels")
        self.labels = tf.constant(labels if self.conditional else np.zeros(len(images)), dtype=tf.int32)
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
                                              augment_p=self.augment_p, real_accuracy=self.real_accuracy, **extra)
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

    def _generate(self, noise, labels):
        return self.generator([noise, labels] if self.conditional else noise, training=True)

    def _discriminate(self, images, labels):
        """D's output on the images, augmented first (the same way for real and generated) if asked."""
        if self.augment_policy:
            images = augment(images, self.rng, self.augment_p, self.augment_policy)
        d = self.discriminator([images, labels] if self.conditional else images, training=True)
        return tf.cast(d, tf.float32)

    def _r1_penalty(self, input_tape, d_real, real):
        """R1: (gamma/2) · mean over reals of |d logit / d image|^2, which pulls D's surface flat at the
        data, so G and D settle instead of circling (Mescheder et al. 2018). Computed inside D's tape:
        its gradient wrt D's weights is a second derivative. A sigmoid D's logit is log(p / (1 - p)),
        whose slope in p is 1 / (p (1 - p)). A float16 sigmoid rounds to exactly 1 from |logit| of
        about 8, so there p (1 - p) is floored at 1e-4 and the input gradient is not loss-scaled:
        either would overflow float16."""
        floor = 1e-4 if self.discriminator.compute_dtype == "float16" else 1e-7
        logit_slope = tf.ones_like(d_real) if self.d_logits else 1.0 / tf.maximum(d_real * (1.0 - d_real), floor)
        grad = input_tape.gradient(d_real, real, output_gradients=logit_slope)
        return 0.5 * self.cfg.r1_gamma * tf.reduce_mean(tf.reduce_sum(tf.square(grad), axis=[1, 2, 3]))

    def _random_labels(self, batch, n):
        """Labels for generated images, drawn from the training set's own class mix."""
        return tf.gather(self.labels, self.rng.uniform([batch], 0, n, dtype=tf.int64))

    def _probability(self, outputs):
        return tf.sigmoid(outputs) if self.d_logits else outputs

    def _adapt_augment_p(self, real_accuracy):
        """StyleGAN2-ADA's controller on D's accuracy on real images (a running mean): above the
        target D is overfitting, so augment more; below it, less. p can cross [0, 1] in
        ADA_SPEED_IMAGES images."""
        self.real_accuracy.assign(0.95 * self.real_accuracy + 0.05 * real_accuracy)
        direction = tf.sign(self.real_accuracy - self.cfg.ada_target)
        change = direction * self.cfg.batch_size / ADA_SPEED_IMAGES
        self.augment_p.assign(tf.clip_by_value(self.augment_p + change, 0.0, 1.0))

    def _train_step(self):
        batch, n = self.cfg.batch_size, tf.shape(self.images, out_type=tf.int64)[0]
        # Draw a real batch with replacement and noise, from the checkpointed RNG
        index = self.rng.uniform([batch], 0, n, dtype=tf.int64)
        real, real_labels = tf.gather(self.images, index), tf.gather(self.labels, index)
        noise, fake_labels = self.rng.normal([batch, self.cfg.noise_dim]), self._random_labels(batch, n)
        # Train the discriminator on real and generated images
        with tf.GradientTape() as tape:
            with tf.GradientTape(watch_accessed_variables=False) as input_tape:  # for R1; free when unused
                input_tape.watch(real)
                d_real = self._discriminate(real, real_labels)
            d_fake = self._discriminate(self._generate(noise, fake_labels), fake_labels)
            d_loss, _ = self.loss_fn(d_real, d_fake, d_fake, self.d_logits)
            if self.cfg.r1_gamma > 0:
                d_loss += self._r1_penalty(input_tape, d_real, real)
            d_scaled = self.d_opt.scale_loss(d_loss)
        self._update(tape, d_scaled, self.discriminator, self.d_opt)
        # Train the generator through the (now updated) discriminator, on fresh noise
        noise, fake_labels = self.rng.normal([batch, self.cfg.noise_dim]), self._random_labels(batch, n)
        with tf.GradientTape() as tape:
            d_gen = self._discriminate(self._generate(noise, fake_labels), fake_labels)
            _, g_loss = self.loss_fn(d_real, d_fake, d_gen, self.d_logits)
            g_scaled = self.g_opt.scale_loss(g_loss)
        self._update(tape, g_scaled, self.generator, self.g_opt)
        if self.generator_ema is not None:
            self._update_ema()
        p_real, p_fake = self._probability(d_real), self._probability(d_fake)
        acc_real = tf.reduce_mean(tf.cast(p_real > 0.5, tf.float32))
        if self.augment_policy and self.cfg.ada_target > 0:
            self._adapt_augment_p(acc_real)
        self.step.assign_add(1)
        return {"d_loss": d_loss, "g_loss": g_loss, "d_real": tf.reduce_mean(p_real), "d_fake": tf.reduce_mean(p_fake),
                "d_acc_real": acc_real, "d_acc_fake": tf.reduce_mean(tf.cast(p_fake < 0.5, tf.float32)),
                "augment_p": tf.identity(self.augment_p)}

    def samples(self, noise: np.ndarray) -> np.ndarray:
        """Images from the sampling generator; a conditional one gets `grid_labels`."""
        inputs = [noise, grid_labels(len(noise))] if self.conditional else noise
        return np.asarray(self.sampling_generator(inputs, training=False), np.float32)


def grid_labels(n: int) -> np.ndarray:
    """Labels of a conditional run's sample grid: rows alternate no tumour (0) and tumour (1)."""
    return (np.arange(n) // SAMPLE_GRID % 2).astype(np.int32)


# ---------------------------------------------------------------------------------------------
# The run folder


def library_versions() -> dict:
    return {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__, "opencv": cv2.__version__}


def run_record(cfg: GANConfig, manifest: dict, n_train: int, mixed_precision: bool, layers: dict) -> dict:
    """Everything a run resolved: settings, data identity, software and hardware."""
    data = manifest["dataset"]
    return {
        "config": cfg.to_dict(),
        "effective": {"mixed_precision": mixed_precision, "xla": cfg.xla, "layers": layers, "train_images": n_train,
                      "conditional": is_conditional(cfg),
                      "total_steps": cfg.epochs * cfg.steps_per_epoch},
        "data": {"file": str(cfg.processed_path), "file_sha256": data.get("file_sha256"),
                 "synthetic": data["synthetic"], "source": data["source"], "source_detail": data["source_detail"],
                 "classes": data["classes"], "per_split": data["per_split"]},
        "versions": library_versions(),
        "device": {"gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
                   "platform": platform.platform(), "processor": platform.processor()},
        "paths_relative_to": str(workspace_root() or PROJECT_ROOT),  # the Colab workspace on Drive, or the repository
    }


def check_resumable(run_dir: Path, cfg: GANConfig) -> None:
    """Refuse to continue a run folder with different settings (only `epochs` may grow); a setting
    newer than the folder counts as it was then (`recorded_settings`)."""
    saved = recorded_settings(run_dir)
    free = {"epochs", "resume", "output_root", "data_dir", "log_every", "checkpoint_every", *EVALUATION_FIELDS}
    changed = {k: (saved[k], v) for k, v in cfg.to_dict().items() if k not in free and saved[k] != v}
    if changed:
        raise ValueError(f"{run_dir} was made with other settings {changed} (saved, now); "
                         "use another run_name, or the saved settings to resume.")


def trim_history(path: Path, last_step: int, fields: list[str]) -> None:
    """Drop rows after the restored checkpoint, so a resumed run repeats no step."""
    if not path.exists():
        return
    with path.open() as f:
        rows = [r for r in csv.DictReader(f) if int(r["step"]) <= last_step]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fields)
        writer.writeheader()
        writer.writerows(rows)


def save_grid(images: np.ndarray, path: Path, synthetic: bool) -> None:
    """A 5x5 sample grid as PNG; one from phantom data says so on the image itself."""
    grid = montage(from_unit_range(images[..., 0]), ncols=SAMPLE_GRID, tile=max(images.shape[1], 64))
    cv2.imwrite(str(path), banner(grid, SYNTHETIC_LABEL) if synthetic else grid)


class HealthLog:
    """Every `kid_every` steps: KID and diversity (monitor.py), D's accuracies and p averaged over
    the history rows since the last check, into health.csv; the generator with the lowest KID so far
    as generator_best.keras (best.json says which step); a loud warning when diversity collapses."""

    def __init__(self, cfg: GANConfig, run_dir: Path, images: np.ndarray, last_step: int):
        self.run_dir, self.path, self.best_path = run_dir, run_dir / "health.csv", run_dir / "best.json"
        trim_history(self.path, last_step, HEALTH_FIELDS)
        best = json.loads(self.best_path.read_text()) if self.best_path.exists() else {}
        self.best_kid = best.get("kid", np.inf) if best.get("step", np.inf) <= last_step else np.inf
        self.monitor = QualityMonitor(images, cfg.kid_images, cfg.seed)
        self.window: list[StepOutput] = []

    def record(self, values: StepOutput) -> None:
        self.window.append(values)

    def check(self, trainer: GANTrainer, epoch: int, step: int) -> None:
        quality = self.monitor.check(trainer.sampling_generator)
        mean = lambda name: float(np.mean([getattr(v, name) for v in self.window])) if self.window else np.nan  # noqa: E731
        row = {"epoch": epoch, "step": step, "kid": quality.kid, "kid_std": quality.kid_std,
               "diversity_ratio": quality.diversity_ratio, "d_acc_real": mean("d_acc_real"),
               "d_acc_fake": mean("d_acc_fake"), "augment_p": mean("augment_p"),
               "collapse_warning": int(quality.collapsing), "wall_time_s": round(float(trainer.wall_time), 3)}
        new_file = not self.path.exists()
        with self.path.open("a", newline="") as f:
            writer = csv.DictWriter(f, HEALTH_FIELDS)
            if new_file:
                writer.writeheader()
            writer.writerow(row)
        self.window.clear()
        say(f"step {step}: KID {quality.kid:.3f} ± {quality.kid_std:.3f} (random-CNN features), diversity "
            f"{quality.diversity_ratio:.0%} of the training set's, D accuracy real {row['d_acc_real']:.2f} / fake "
            f"{row['d_acc_fake']:.2f}, augment p {row['augment_p']:.2f}")
        if quality.collapsing:
            say(f"WARNING: step {step}: generated diversity is {quality.diversity_ratio:.0%} of the training set's: "
                "mode collapse is starting (see health.csv and the sample grids).")
        if quality.kid < self.best_kid:
            self.best_kid = quality.kid
            with_stock_layers(trainer.sampling_generator).save(self.run_dir / "generator_best.keras")
            self.best_path.write_text(json.dumps({"step": step, "kid": quality.kid, "kid_std": quality.kid_std}))


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
    images, labels, manifest = load_processed(cfg.processed_path, "train")
    mixed = use_mixed_precision(cfg)
    layers = choose_layers(device_types())
    trainer = GANTrainer(cfg, images, mixed, labels, layers["speed_layers"])
    synthetic = manifest["dataset"]["synthetic"]
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
        save_grid(images[:SAMPLE_GRID**2], run_dir / "samples" / "reals.png", synthetic)
    record = run_record(cfg, manifest, len(images), mixed, layers)
    (run_dir / "config.json").write_text(json.dumps(record, indent=2))
    history_path = run_dir / "history.csv"
    trim_history(history_path, int(trainer.step), HISTORY_FIELDS)
    health = HealthLog(cfg, run_dir, images, int(trainer.step)) if cfg.kid_every else None
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
        pace = Pace(step, total)
        while step < total:
            epoch = step // cfg.steps_per_epoch
            bar = None  # started after this epoch's first step, so compiling does not inflate its first ETA
            while step < (epoch + 1) * cfg.steps_per_epoch:
                out = trainer.compiled_step()
                step += 1
                done_now += 1
                if done_now <= PACE_STEPS + 1 or step == total:
                    float(out["d_loss"])  # wait for the step: the pace line times finished steps
                    pace.tick(step)
                if bar is None:
                    bar = progress_bar(desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="step",
                                       initial=step - epoch * cfg.steps_per_epoch, total=cfg.steps_per_epoch)
                else:
                    bar.update(1)
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
                    if health is not None:
                        health.record(values)
                    if board is not None:
                        with board.as_default(step=step):
                            for name, value in vars(values).items():
                                tf.summary.scalar(name, value)
                if health is not None and (step % cfg.kid_every == 0 or step == total):
                    trainer.wall_time.assign(base_wall + time.perf_counter() - started)
                    health.check(trainer, epoch + 1, step)
                if step % cfg.checkpoint_every == 0:
                    history_file.flush()
                    manager.save(checkpoint_number=step)
                if stop_after_steps is not None and done_now >= stop_after_steps:
                    return run_dir
            bar.close()
            save_grid(trainer.samples(z_fixed), run_dir / "samples" / f"epoch_{epoch + 1:03d}.png", synthetic)
            if step % cfg.checkpoint_every:  # otherwise this step was saved just above
                history_file.flush()
                manager.save(checkpoint_number=step)
    with_stock_layers(trainer.sampling_generator).save(run_dir / "generator.keras")
    return run_dir
