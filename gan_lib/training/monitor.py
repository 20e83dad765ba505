"""Image quality measured during training, so a run shows when it got good and when it started to
collapse instead of only how it ended: every `kid_every` steps, KID of a fixed sample of generated
images against the training images, the evaluation's diversity figure (MS-SSIM against the real
set's) and the share of training images the sample reaches (recall, coverage), written by
`HealthLog` to health.csv, with KID against the held-out real scans and, for a conditional run,
the label's fidelity (`LabelCheck`). Features come from the fixed random CNN whatever
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
from ..config import GANConfig, no_tumour_classes
from ..evaluation import classifier as clf
from ..evaluation import metrics
from ..evaluation.features import random_cnn_extractor
from ..evaluation.label_fidelity import class_calls, score
from ..models.architectures import is_conditional
from ..records.evaluation import BestGenerator, read_best, write_best
from ..runs.folder import save_model, trim_history
from ..runs.generate import default_labels, generate
from ..runs.logs import load_history

HEALTH_FIELDS = ["epoch", "step", "kid", "kid_std", "diversity_ratio", "recall", "coverage", "kid_held_out",
                 "label_accuracy", "label_accuracy_held_out", "no_tumour_called_tumour",
                 "no_tumour_called_tumour_held_out", "d_acc_real", "d_acc_fake", "augment_p", "collapse_warning",
                 "wall_time_s"]
WINDOW_FIELDS = ("d_acc_real", "d_acc_fake", "augment_p")  # averaged from history.csv's rows between checks
KID_SUBSETS = 20
DIVERSITY_PAIRS = 200
HEALTH_CLASSIFIER = "health_classifier.keras"  # in the run folder: a resumed run's checks use the same classifier


@dataclass
class QualityCheck:
    kid: float
    kid_std: float
    diversity_ratio: float  # (1 - MS-SSIM) of generated pairs over that of real pairs: 1 = as diverse as real
    recall: float  # share of training images inside the generated sample's k-NN balls (metrics.coverage_metrics)
    coverage: float  # share of training images whose own k-NN ball holds a generated image
    collapsing: bool  # diversity below the evaluation's collapse flag
    kid_held_out: float  # against the held-out real scans (NaN: none)
    labels: LabelCalls  # NaN for a run without labels


@dataclass(frozen=True)
class LabelCalls:
    accuracy: float  # the classes' mean share called the class they are (label_fidelity.score)
    no_tumour_called_tumour: float  # share of no-tumour images called a tumour class

    @staticmethod
    def none() -> LabelCalls:
        return LabelCalls(float("nan"), float("nan"))


class LabelCheck:
    """A conditional run's label fidelity: a classifier trained on the run's real training scans
    (kept in the run folder) calls the check's generated images by their asked-for labels, beside
    what it calls the held-out real scans (the baseline, computed once)."""

    def __init__(self, cfg: GANConfig, run_dir: Path, images: np.ndarray, labels: np.ndarray, held_out: tuple | None):
        path, self.n_classes = run_dir / HEALTH_CLASSIFIER, len(cfg.class_names())
        self.first_tumour = no_tumour_classes(cfg.classes, cfg.class_map)
        if path.exists():
            self.model = keras.models.load_model(path, compile=False)
        else:
            self.model = clf.train_classifier(images, labels, seed=cfg.seed, epochs=cfg.classifier_epochs,
                                              n_classes=self.n_classes)
            save_model(self.model, path)
        self.held_out = self.calls(*held_out) if held_out is not None else LabelCalls.none()

    def calls(self, images: np.ndarray, labels: np.ndarray) -> LabelCalls:
        predicted = clf.predicted_classes(self.model, images)
        per_class = {c: class_calls(predicted, labels, c, self.first_tumour) for c in range(self.n_classes)}
        no_tumour = predicted[labels < self.first_tumour]
        return LabelCalls(score(per_class), float((no_tumour >= self.first_tumour).mean()) if len(no_tumour) else np.nan)


class QualityMonitor:
    """Features and diversity of the training images, computed once; `check(generator)` scores a
    fixed noise sample, so successive checks differ only by the generator."""

    def __init__(self, real_images: np.ndarray, n_generated: int, seed: int, held_out: np.ndarray | None = None,
                 labels: LabelCheck | None = None):
        self.n_generated, self.seed, self.labels = n_generated, seed, labels
        self.extractor = random_cnn_extractor(real_images.shape[1])
        features = self.extractor.extract(real_images)
        self.mean, self.std = metrics.standardiser(features)
        self.real_features = (features - self.mean) / self.std
        self.held_out_features = (None if held_out is None or len(held_out) < 2 else
                                  (self.extractor.extract(held_out) - self.mean) / self.std)
        self.real_msssim, _ = metrics.mean_pairwise_msssim(real_images, DIVERSITY_PAIRS, seed)

    def check(self, generator) -> QualityCheck:
        images, _ = generate(generator, self.n_generated, seed=self.seed)
        features = (self.extractor.extract(images) - self.mean) / self.std
        kid, kid_std = metrics.kid(features, self.real_features, subset_size=100, subsets=KID_SUBSETS, seed=self.seed)
        kid_held_out = (np.nan if self.held_out_features is None else
                        metrics.kid(features, self.held_out_features, subset_size=100, subsets=KID_SUBSETS, seed=self.seed)[0])
        generated_msssim, _ = metrics.mean_pairwise_msssim(images, DIVERSITY_PAIRS, self.seed)
        ratio = metrics.diversity_ratio(generated_msssim, self.real_msssim)
        reach = metrics.coverage_metrics(self.real_features, features)
        labels = (self.labels.calls(images, default_labels(0, len(images), self.labels.n_classes)) if self.labels
                  else LabelCalls.none())
        return QualityCheck(kid, kid_std, ratio, reach["recall"], reach["coverage"], ratio < metrics.COLLAPSED_RATIO,
                            kid_held_out, labels)


@dataclass
class BestSoFar:
    """The lowest figure among a run's quality checks so far and how many checks have passed since:
    what picks generator_best.keras and what `stop_after_checks` counts, live or replayed."""
    value: float = np.inf
    stale: int = 0
    step: int | None = None  # the best check's

    def offer(self, value: float, step: int) -> bool:
        """Count one check; True when its figure is the new best (a NaN never is)."""
        self.stale += 1
        if value < self.value:
            self.value, self.stale, self.step = value, 0, step
            return True
        return False

    def stalled(self, limit: int) -> bool:
        """Whether the best has not improved for `limit` checks in a row (0: never)."""
        return 0 < limit <= self.stale


def first_candidate(cfg: GANConfig) -> int:
    """The first step whose check may pick generator_best.keras: `best_from_step`, or the
    schedule's last step when it ends before that."""
    return min(cfg.best_from_step, cfg.epochs * cfg.steps_per_epoch)


def replay_stopping(checks: list[dict], by: str, limit: int, from_step: int = 0) -> tuple[int | None, int | None]:
    """What `stop_after_checks=limit` (with `best_from_step=from_step`) would have done to a run
    whose health.csv holds `checks`: the step it would have stopped at (None: it trains on to the
    end) and the step of the generator_best.keras (picked by the column `by`) it would have kept."""
    best = BestSoFar()
    for row in (r for r in checks if r["step"] >= from_step):
        best.offer(row[by], int(row["step"]))
        if best.stalled(limit):
            return int(row["step"]), best.step
    return None, best.step


def best_by(cfg: GANConfig, held_out: tuple | None) -> str:
    """The figure that picks generator_best.keras: `cfg.best_by`, or KID against the training scans
    when there are no held-out scans to check against."""
    return cfg.best_by if held_out is not None and len(held_out[0]) >= 2 else "kid"


class HealthLog:
    """Every `kid_every` steps: KID and diversity, D's accuracies and p averaged over the history
    rows since the last check, into health.csv; the generator with the lowest KID so far (against
    the held-out scans, or with best_by="kid" the training scans) as generator_best.keras (best.json
    says which step and figure); a loud warning when diversity collapses."""

    def __init__(self, cfg: GANConfig, run_dir: Path, real: tuple, held_out: tuple | None, last_step: int):
        """`real` and `held_out`: (images, labels) of the training scans checked against (all or a
        sample) and of the held-out scans (None: none, or not read, as for streamed data)."""
        self.run_dir, self.path = run_dir, run_dir / "health.csv"
        trim_history(self.path, last_step, HEALTH_FIELDS)
        labels = LabelCheck(cfg, run_dir, *real, held_out) if is_conditional(cfg) else None
        self.monitor = QualityMonitor(real[0], cfg.kid_images, cfg.seed, held_out[0] if held_out else None, labels)
        self.best_by, self.first_candidate = best_by(cfg, held_out), first_candidate(cfg)
        if self.best_by != cfg.best_by:
            print_above_bar(f"NOTE: best_by={cfg.best_by}, but this run's checks have no held-out scans (holdout=0, "
                            "or a streamed split): generator_best.keras is picked by KID against the training scans "
                            "(best.json says so: by=kid).")
        checks = load_history(run_dir, "health.csv") if self.path.exists() else []
        self.best = self._best_so_far(checks, last_step)
        # The history rows since the last check, as an uninterrupted run would hold them
        last_check = max((r["step"] for r in checks), default=0)
        rows = load_history(run_dir) if (run_dir / "history.csv").exists() else []
        self.window = [{k: r[k] for k in WINDOW_FIELDS} for r in rows if last_check < r["step"] <= last_step]

    def _best_so_far(self, checks: list[dict], last_step: int) -> BestSoFar:
        """The best figure up to the restored step and the checks made since it. A best found after
        that step does not count (its check is repeated); one picked by another figure (`best_by`
        changed on resume) or before `best_from_step` neither: the best is picked afresh, said aloud."""
        best = read_best(self.run_dir)
        if best is None or best.step > last_step:
            return BestSoFar()
        if best.step < self.first_candidate:
            print_above_bar(f"NOTE: generator_best.keras is step {best.step}'s, before best_from_step="
                            f"{self.first_candidate}: it is picked afresh among the checks from step "
                            f"{max(last_step + 1, self.first_candidate)} on.")
            return BestSoFar()
        if best.by != self.best_by:
            print_above_bar(f"NOTE: generator_best.keras was picked by {best.by} up to step {last_step}; from here it is "
                            f"picked by {self.best_by}, among the checks from step {last_step} on.")
            return BestSoFar()
        return BestSoFar(best.value, sum(best.step < r["step"] <= last_step for r in checks), best.step)

    def baselines(self) -> dict:
        """The label check's calls on the held-out real scans, the same in every row."""
        held_out = self.monitor.labels.held_out if self.monitor.labels else LabelCalls.none()
        return {"label_accuracy_held_out": held_out.accuracy,
                "no_tumour_called_tumour_held_out": held_out.no_tumour_called_tumour}

    def record(self, values: dict) -> None:
        """One history row's step outputs (d_acc_real, d_acc_fake, augment_p, ...)."""
        self.window.append(values)

    def check(self, generator: keras.Model, epoch: int, step: int, wall_time_s: float) -> None:
        quality = self.monitor.check(generator)
        mean = lambda name: float(np.mean([v[name] for v in self.window])) if self.window else np.nan  # noqa: E731
        row = {"epoch": epoch, "step": step, "kid": quality.kid, "kid_std": quality.kid_std,
               "diversity_ratio": quality.diversity_ratio, "recall": quality.recall, "coverage": quality.coverage,
               "kid_held_out": quality.kid_held_out, "label_accuracy": quality.labels.accuracy,
               "no_tumour_called_tumour": quality.labels.no_tumour_called_tumour, **self.baselines(),
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
        value = quality.kid if self.best_by == "kid" else quality.kid_held_out
        if step >= self.first_candidate and self.best.offer(value, step):
            save_model(generator, self.run_dir / "generator_best.keras")
            held_out = None if np.isnan(quality.kid_held_out) else quality.kid_held_out
            write_best(self.run_dir, BestGenerator(step, quality.kid, quality.kid_std, self.best_by, held_out))
        print_above_bar(f"step {step}: KID {quality.kid:.3f} ± {quality.kid_std:.3f} (random-CNN features), diversity "
                        f"{quality.diversity_ratio:.0%} of the training set's, recall {quality.recall:.2f}, coverage "
                        f"{quality.coverage:.2f}, D accuracy real {row['d_acc_real']:.2f} / fake "
                        f"{row['d_acc_fake']:.2f}, augment p {row['augment_p']:.2f}"
                        + (f"; labels: {quality.labels.accuracy:.0%} drawn as asked (held-out real scans "
                           f"{row['label_accuracy_held_out']:.0%}), no tumour called tumour "
                           f"{quality.labels.no_tumour_called_tumour:.0%} (real {row['no_tumour_called_tumour_held_out']:.0%})"
                           if self.monitor.labels else "")
                        + (f"; generator_best.keras: step {self.best.step} ({self.best_by} {self.best.value:.3f})"
                           if self.best.step is not None else
                           f"; no generator_best.keras yet (picked by {self.best_by} from step {self.first_candidate} on)"))
        if quality.collapsing:
            print_above_bar(f"WARNING: step {step}: generated diversity is {quality.diversity_ratio:.0%} of the training set's: "
                            "mode collapse is starting (see health.csv and the sample grids).")

