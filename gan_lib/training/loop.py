"""The training loop: train (or resume) one run folder, never losing more than one checkpoint
interval.

Why a plain loop around the compiled step (gan_lib.training.step) rather than `fit()`: the report's
schedule is 3750-step epochs, and a Colab runtime can die mid-epoch; resuming at the exact step
(weights, both optimisers, RNG state, wall clock) is simple here and awkward through
`fit(initial_epoch=...)`.
"""

from __future__ import annotations

import csv
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from ..base.progress import PACE_STEPS, Pace, print_above_bar, progress_bar
from ..config import PRESETS, GANConfig
from ..data import streaming
from ..data.images import SAMPLE_GRID, by_grid_rows, grid_rows_caption, save_grid, synthetic_marks
from ..data.phantom import SYNTHETIC_LABEL
from ..data.storage import (choose_dataset, dataset_file, load_processed, read_manifest, read_shards, shard_files,
                            shards_sha256, split_mb, split_sha256, with_dataset)
from ..models.architectures import is_conditional
from ..records.manifest import DatasetManifest
from ..records.run import RUN_RECORD, RunFolderError, write_run_record
from ..runs.folder import (KEEP_CHECKPOINTS, check_resumable, check_same_data, engines_by_step, has_checkpoint,
                           recorded_dataset, recorded_settings, restore_newest_good, run_record, save_final_generator,
                           trim_history)
from ..runs.location import run_lock, run_path
from ..runs.logs import load_history
from .engine_choice import choose_engine
from .monitor import HealthLog, best_by
from .step import GANTrainer, StepOutput
from .strategies import describe, is_chief, make_strategy

STREAM_SAMPLE = 1000  # training images kept in memory when streaming: previews, quality checks, speed measurement
HISTORY_FIELDS = ["epoch", "step", "d_loss", "g_loss", "d_real", "d_fake", "d_acc_real", "d_acc_fake", "augment_p",
                  "wall_time_s"]


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


def train(cfg: GANConfig, stop_after_steps: int | None = None) -> Path:
    """Train (or resume) the run `cfg.run_name`; returns its folder.

    `stop_after_steps` ends the call early after that many new steps (as a dying runtime would)
    without any final save: tests use it to check resumption.
    """
    strategy = make_strategy(cfg)  # first: logical devices are set before TensorFlow starts its devices
    run_dir = run_path(cfg)
    resuming = has_checkpoint(run_dir)
    if (run_dir / RUN_RECORD).exists() and not cfg.resume:
        raise FileExistsError(f"{run_dir} exists and resume=False: choose another run_name.")
    if resuming:  # the run folder says which data; a dataset named now must hold the same
        path = dataset_file(cfg, cfg.dataset) if cfg.dataset else recorded_dataset(run_dir, cfg)
    else:
        path = choose_dataset(cfg)
    data = training_data(cfg, path)
    cfg = with_dataset(cfg, path, data.manifest)
    if resuming:
        check_resumable(run_dir, cfg, is_conditional(cfg))
        check_same_data(run_dir, path, data.sha256, data.manifest)
    elif (run_dir / RUN_RECORD).exists():
        refuse_to_restart_lost_work(run_dir)
        print(f"{run_dir} holds no checkpoint: starting it over.")
    if not is_chief(strategy):  # a multi-worker run's other workers compute, the chief writes
        with tempfile.TemporaryDirectory(prefix="gan_lib_worker_") as scratch:
            _train(cfg, data, stop_after_steps, strategy, Path(scratch))
        return run_dir
    with run_lock(run_dir):
        return _train(cfg, data, stop_after_steps, strategy)


@dataclass
class TrainingData:
    """What a run trains on: the training images (all of them, or when streamed a sample for the
    previews, the quality checks and the speed measurement), every training label, the manifest,
    the split's hash, the shard files it streams from (None: in memory), and the held-out split's
    (images, labels) for the quality checks (None: no held-out scans, or streamed)."""
    images: np.ndarray
    labels: np.ndarray
    manifest: DatasetManifest
    sha256: str
    shards: list[Path] | None
    held_out: tuple[np.ndarray, np.ndarray] | None


def refuse_to_restart_lost_work(run_dir: Path) -> None:
    """A run folder without a checkpoint starts over only if it never had one to lose (a run that
    stopped before its first): one that trained past a checkpoint, or finished, has had them
    deleted, and training again would replace its generator.keras and config.json. That must be
    asked for, by moving the folder away."""
    logged = load_history(run_dir) if (run_dir / "history.csv").exists() else []
    steps = int(logged[-1]["step"]) if logged else 0
    if steps >= recorded_settings(run_dir)["checkpoint_every"] or (run_dir / "generator.keras").exists():
        raise RunFolderError(f"{run_dir} trained {steps} steps but holds no checkpoint (were they deleted?): "
                             "training it again would start over and replace its generator.keras and config.json. "
                             "To start over, move the folder away (or delete it); else choose another run_name.")


def training_data(cfg: GANConfig, path: Path) -> TrainingData:
    """The training split of the dataset at `path`: in memory, or over `cfg.memory_budget_mb` a
    sample of its images (STREAM_SAMPLE) and the shards to stream, hashed one file at a time."""
    manifest = read_manifest(path)
    size = split_mb(manifest)
    if size <= cfg.memory_budget_mb:
        images, labels, manifest = load_processed(path, "train")
        held_out = load_processed(path, "test")[:2]
        return TrainingData(images, labels, manifest, split_sha256(images, labels), None,
                            held_out if len(held_out[1]) else None)
    files = shard_files(path, manifest)
    side = manifest.dataset.image_size
    sha256, labels = shards_sha256(files, side, manifest.dataset.train_sha256)
    images = np.concatenate([part for part, _ in read_shards(files, side, STREAM_SAMPLE)])
    print_above_bar(f"streaming the training split ({len(labels)} images, {size:.0f} MB > memory_budget_mb={cfg.memory_budget_mb:g}) "
                    f"from {len(files)} shard(s); previews, quality checks and the speed measurement use its first {len(images)}, "
                    "and the quality checks do not read the held-out scans (health.csv's held-out columns say nan)")
    return TrainingData(images, labels, read_manifest(path), sha256, files, None)  # as shard_files may have just listed them


def _train(cfg: GANConfig, data: TrainingData, stop_after_steps: int | None,
           strategy: tf.distribute.Strategy | None = None, worker_scratch: Path | None = None) -> Path:
    """The loop of `train`, holding the run folder's lock; or, given `worker_scratch`, a non-chief
    worker's share of a multi-worker run: the same steps, its checkpoints (which every worker must
    save) in the scratch folder, nothing written to the run folder."""
    chief = worker_scratch is None
    run_dir, ckpt_dir = run_path(cfg), run_path(cfg) / "checkpoints"
    changed = {k: v for k, v in cfg.overridden().items() if k in PRESETS[cfg.preset]}
    print(f"{cfg.run_name}: preset {cfg.preset}" + "".join(f", {k}={v!r}" for k, v in changed.items())
          + f"; dataset {cfg.dataset} ({len(data.labels)} training images, {cfg.image_size} px)")
    where = describe(cfg, strategy)
    if strategy is not None:
        print_above_bar(f"strategy {cfg.strategy}: {where['replicas']} replicas ({', '.join(where['devices'])}), "
                        f"{where['per_replica_batch']} images each; BatchNorm {where['batch_norm']}")
    engine, engine_record = choose_engine(cfg, data.images, data.labels[:len(data.images)], strategy)
    stream = streaming.batches(data.shards, cfg.image_size, cfg.batch_size, cfg.seed) if data.shards else None
    trainer = GANTrainer(cfg, None if stream else data.images, data.labels, engine, strategy, stream)
    if chief:
        (run_dir / "samples").mkdir(parents=True, exist_ok=True)
        ckpt_dir.mkdir(exist_ok=True)
    restored = restore_newest_good(trainer.checkpoint, ckpt_dir, tidy=chief) if ckpt_dir.exists() else None
    manager = tf.train.CheckpointManager(trainer.checkpoint, str(ckpt_dir if chief else worker_scratch),
                                         max_to_keep=KEEP_CHECKPOINTS)
    if restored:
        print(f"Resuming {run_dir.name} from step {int(trainer.step)} ({restored}).")
    if not chief:
        _worker_loop(cfg, trainer, manager, stop_after_steps)
        return run_dir
    z_fixed = _fixed_noise(cfg, data, run_dir, restored)
    engine_used = {**vars(engine), **({"replicas": where["replicas"]} if strategy is not None else {})}
    effective = {"engine": engine_record, "strategy": where,
                 "engines": engines_by_step(run_dir, restored, int(trainer.step), engine_used),
                 "train_images": len(data.labels),
                 "training_data": (f"streamed from {len(data.shards)} shard(s) (memory_budget_mb="
                                   f"{cfg.memory_budget_mb:g}); quality checks against its first {len(data.images)} "
                                   "images" if data.shards else "in memory, batches drawn with replacement"),
                 "conditional": is_conditional(cfg), "total_steps": cfg.epochs * cfg.steps_per_epoch,
                 "best_by": best_by(cfg, data.held_out) if cfg.kid_every else None}
    write_run_record(run_dir, run_record(cfg, data.manifest, effective, data.sha256))
    if _epochs(cfg, data, trainer, manager, z_fixed, stop_after_steps):
        save_final_generator(trainer.sampling_generator, run_dir, int(trainer.step))
    return run_dir


def _captions(cfg: GANConfig, data: TrainingData) -> list[str]:
    """The lines under a sample grid's title: which class each row is, and whether the data was the phantom."""
    return (([grid_rows_caption(cfg.class_names())] if is_conditional(cfg) else [])
            + ([SYNTHETIC_LABEL] if data.manifest.dataset.synthetic else []))


def _fixed_noise(cfg: GANConfig, data: TrainingData, run_dir: Path, restored) -> np.ndarray:
    """The noise every epoch's sample grid is drawn from: made and saved (with the grid of real
    scans beside it) when the run starts, read back when it resumes."""
    z_path = run_dir / "samples" / "z_fixed.npy"
    if restored:
        return np.load(z_path)
    z_fixed = np.random.default_rng(cfg.seed).standard_normal((SAMPLE_GRID**2, cfg.noise_dim)).astype(np.float32)
    np.save(z_path, z_fixed)
    images, labels = data.images, data.labels
    reals = (by_grid_rows(labels[:len(images)], len(cfg.class_names())) if is_conditional(cfg)
             else np.arange(min(len(images), SAMPLE_GRID**2)))
    save_grid(images[reals], run_dir / "samples" / "reals.png", "\n".join(["REAL training scans", *_captions(cfg, data)]))
    return z_fixed


def _epochs(cfg: GANConfig, data: TrainingData, trainer: GANTrainer, manager: tf.train.CheckpointManager,
            z_fixed: np.ndarray, stop_after_steps: int | None) -> bool:
    """The chief's epochs, from the trainer's step to the schedule's end or an early stop
    (`stop_after_checks`): history.csv, the health log, checkpoints and each epoch's sample grid.
    False if stopped after `stop_after_steps`."""
    run_dir, total = run_path(cfg), cfg.epochs * cfg.steps_per_epoch
    history_path = run_dir / "history.csv"
    trim_history(history_path, int(trainer.step), HISTORY_FIELDS)
    health = (HealthLog(cfg, run_dir, (data.images, data.labels[:len(data.images)]), data.held_out, int(trainer.step))
              if cfg.kid_every else None)
    new_file = not history_path.exists()
    with history_path.open("a", newline="") as history_file:
        history = csv.DictWriter(history_file, HISTORY_FIELDS)
        if new_file:
            history.writeheader()
        board = tf.summary.create_file_writer(str(run_dir / "tensorboard")) if cfg.tensorboard else None
        started, base_wall, done_now = time.perf_counter(), float(trainer.wall_time), 0
        # The step is counted on the host: reading the device counter every step would wait for
        # each step to finish before the next is dispatched.
        step = int(trainer.step)
        pace = Pace(total)
        stopped = _stopped_early(cfg, health, step)
        while step < total and not stopped:
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
                    trainer.wall_time.assign(base_wall + time.perf_counter() - started)
                    values = _logged(out, step, manager, history_file)
                    history.writerow({"epoch": epoch + 1, "step": step, **vars(values),
                                      "wall_time_s": round(float(trainer.wall_time), 3)})
                    bar.set_postfix(d_loss=f"{values.d_loss:.3f}", g_loss=f"{values.g_loss:.3f}", refresh=False)
                    if health is not None:
                        health.record(vars(values))
                    if board is not None:
                        with board.as_default(step=step):
                            for name, value in vars(values).items():
                                tf.summary.scalar(name, value)
                if health is not None and (step % cfg.kid_every == 0 or step == total):
                    trainer.wall_time.assign(base_wall + time.perf_counter() - started)
                    health.check(trainer.sampling_generator, epoch + 1, step, float(trainer.wall_time))
                    stopped = _stopped_early(cfg, health, step)
                if step % cfg.checkpoint_every == 0:
                    history_file.flush()
                    manager.save(checkpoint_number=step)
                if stop_after_steps is not None and done_now >= stop_after_steps:
                    return False
                if stopped:
                    break
            bar.close()
            save_grid(trainer.samples(z_fixed), run_dir / "samples" / f"epoch_{epoch + 1:03d}.png",
                      "\n".join([f"GENERATED, step {step}", *_captions(cfg, data)]),
                      synthetic_marks({"run": cfg.run_name, "preset": cfg.preset, "seed": cfg.seed, "step": step,
                                       "label": "rows alternate 0 (no tumour) and 1 (tumour)"
                                       if is_conditional(cfg) else None}))
            if step % cfg.checkpoint_every:  # otherwise this step was saved just above
                history_file.flush()
                manager.save(checkpoint_number=step)
    return True


def _stopped_early(cfg: GANConfig, health, step: int) -> bool:
    """Whether the run stops here, said aloud: generator_best.keras has not improved for
    `stop_after_checks` checks (a run that stopped so stops again at once when resumed)."""
    if health is None or not health.best.stalled(cfg.stop_after_checks):
        return False
    print_above_bar(f"STOPPED EARLY at step {step} of {cfg.epochs * cfg.steps_per_epoch}: generator_best.keras has not "
                    f"improved for {health.best.stale} checks (stop_after_checks={cfg.stop_after_checks}, best_by="
                    f"{health.best_by}); generator.keras is this step's. stop_after_checks=0 trains on to the schedule's end.")
    return True


def _logged(out: dict, step: int, manager: tf.train.CheckpointManager, history_file) -> StepOutput:
    """A logged step's figures, read from the device; a NaN or infinite loss stops the run."""
    values = StepOutput(**{k: float(v) for k, v in out.items()})
    if not all(np.isfinite([values.d_loss, values.g_loss])):
        history_file.flush()
        raise TrainingDiverged(f"step {step}: d_loss={values.d_loss}, g_loss={values.g_loss}. Training stopped; the "
                               f"last good checkpoint is {manager.latest_checkpoint}.")
    return values


def _worker_loop(cfg: GANConfig, trainer: GANTrainer, manager: tf.train.CheckpointManager,
                 stop_after_steps: int | None) -> None:
    """A non-chief worker's loop: the chief's steps and checkpoint saves, in the same order (every
    step and save is collective), and nothing else."""
    step, done_now, total = int(trainer.step), 0, cfg.epochs * cfg.steps_per_epoch
    while step < total:
        out = trainer.compiled_step()
        step, done_now = step + 1, done_now + 1
        if step % cfg.checkpoint_every == 0 or step % cfg.steps_per_epoch == 0:
            float(out["d_loss"])
            manager.save(checkpoint_number=step)
        if stop_after_steps is not None and done_now >= stop_after_steps:
            return
