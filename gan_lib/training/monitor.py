"""Image quality measured during training, so a run shows when it got good and when it started to
collapse instead of only how it ended: every `kid_every` steps, KID of a fixed sample of generated
images against the training images, the evaluation's diversity figure (MS-SSIM against the real
set's) and the share of training images the sample reaches (recall, coverage), written by
`HealthLog` to health.csv. Features come from the fixed random CNN whatever
`feature_extractor` says: it is offline and cheap enough to run mid-training (InceptionV3 at 299 px
is not, on a CPU); the final evaluation uses the configured extractor.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from ..base.progress import print_above_bar
from ..config import GANConfig
from ..evaluation import metrics
from ..evaluation.features import random_cnn_extractor
from ..records.evaluation import BestGenerator, read_best, write_best
from ..runs.folder import save_model, trim_history
from ..runs.generate import generate
from ..runs.logs import load_history

HEALTH_FIELDS = ["epoch", "step", "kid", "kid_std", "diversity_ratio", "recall", "coverage", "d_acc_real", "d_acc_fake",
                 "augment_p", "collapse_warning", "wall_time_s"]
WINDOW_FIELDS = ("d_acc_real", "d_acc_fake", "augment_p")  # averaged from history.csv's rows between checks
KID_SUBSETS = 20
DIVERSITY_PAIRS = 200


@dataclass
class QualityCheck:
    kid: float
    kid_std: float
    diversity_ratio: float  # (1 - MS-SSIM) of generated pairs over that of real pairs: 1 = as diverse as real
    recall: float  # share of training images inside the generated sample's k-NN balls (metrics.coverage_metrics)
    coverage: float  # share of training images whose own k-NN ball holds a generated image
    collapsing: bool  # diversity below the evaluation's collapse flag


class QualityMonitor:
    """Features and diversity of the training images, computed once; `check(generator)` scores a
    fixed noise sample, so successive checks differ only by the generator."""

    def __init__(self, real_images: np.ndarray, n_generated: int, seed: int):
        self.n_generated, self.seed = n_generated, seed
        self.extractor = random_cnn_extractor(real_images.shape[1])
        features = self.extractor.extract(real_images)
        self.mean, self.std = metrics.standardiser(features)
        self.real_features = (features - self.mean) / self.std
        self.real_msssim, _ = metrics.mean_pairwise_msssim(real_images, DIVERSITY_PAIRS, seed)

    def check(self, generator) -> QualityCheck:
        images, _ = generate(generator, self.n_generated, seed=self.seed)
        features = (self.extractor.extract(images) - self.mean) / self.std
        kid, kid_std = metrics.kid(features, self.real_features, subset_size=100, subsets=KID_SUBSETS, seed=self.seed)
        generated_msssim, _ = metrics.mean_pairwise_msssim(images, DIVERSITY_PAIRS, self.seed)
        ratio = metrics.diversity_ratio(generated_msssim, self.real_msssim)
        reach = metrics.coverage_metrics(self.real_features, features)
        return QualityCheck(kid, kid_std, ratio, reach["recall"], reach["coverage"], ratio < metrics.COLLAPSED_RATIO)


class HealthLog:
    """Every `kid_every` steps: KID and diversity, D's accuracies and p averaged over the history
    rows since the last check, into health.csv; the generator with the lowest KID so far as
    generator_best.keras (best.json says which step); a loud warning when diversity collapses."""

    def __init__(self, cfg: GANConfig, run_dir: Path, images: np.ndarray, last_step: int):
        self.run_dir, self.path = run_dir, run_dir / "health.csv"
        trim_history(self.path, last_step, HEALTH_FIELDS)
        best = read_best(run_dir)  # a check after the restored checkpoint is repeated, so its best does not count
        self.best_kid = best.kid if best and best.step <= last_step else np.inf
        self.monitor = QualityMonitor(images, cfg.kid_images, cfg.seed)
        # The history rows since the last check, as an uninterrupted run would hold them
        checks = load_history(run_dir, "health.csv") if self.path.exists() else []
        last_check = max((r["step"] for r in checks), default=0)
        rows = load_history(run_dir) if (run_dir / "history.csv").exists() else []
        self.window = [{k: r[k] for k in WINDOW_FIELDS} for r in rows if last_check < r["step"] <= last_step]

    def record(self, values: dict) -> None:
        """One history row's step outputs (d_acc_real, d_acc_fake, augment_p, ...)."""
        self.window.append(values)

    def check(self, generator: keras.Model, epoch: int, step: int, wall_time_s: float) -> None:
        quality = self.monitor.check(generator)
        mean = lambda name: float(np.mean([v[name] for v in self.window])) if self.window else np.nan  # noqa: E731
        row = {"epoch": epoch, "step": step, "kid": quality.kid, "kid_std": quality.kid_std,
               "diversity_ratio": quality.diversity_ratio, "recall": quality.recall, "coverage": quality.coverage,
               "d_acc_real": mean("d_acc_real"),
               "d_acc_fake": mean("d_acc_fake"), "augment_p": mean("augment_p"),
               "collapse_warning": int(quality.collapsing), "wall_time_s": round(wall_time_s, 3)}
        new_file = not self.path.exists()
        with self.path.open("a", newline="") as f:
            writer = csv.DictWriter(f, HEALTH_FIELDS)
            if new_file:
                writer.writeheader()
            writer.writerow(row)
        self.window.clear()
        print_above_bar(f"step {step}: KID {quality.kid:.3f} ± {quality.kid_std:.3f} (random-CNN features), diversity "
                        f"{quality.diversity_ratio:.0%} of the training set's, recall {quality.recall:.2f}, coverage "
                        f"{quality.coverage:.2f}, D accuracy real {row['d_acc_real']:.2f} / fake "
                        f"{row['d_acc_fake']:.2f}, augment p {row['augment_p']:.2f}")
        if quality.collapsing:
            print_above_bar(f"WARNING: step {step}: generated diversity is {quality.diversity_ratio:.0%} of the training set's: "
                            "mode collapse is starting (see health.csv and the sample grids).")
        if quality.kid < self.best_kid:
            self.best_kid = quality.kid
            save_model(generator, self.run_dir / "generator_best.keras")
            write_best(self.run_dir, BestGenerator(step, quality.kid, quality.kid_std))
