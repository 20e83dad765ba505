"""Image quality measured during training, so a run shows when it got good and when it started to
collapse instead of only how it ended: every `kid_every` steps, KID of a fixed sample of generated
images against the training images, and the evaluation's diversity figure (MS-SSIM against the real
set's). Features come from the fixed random CNN whatever `feature_extractor` says: it is offline and
cheap enough to run mid-training (InceptionV3 at 299 px is not, on a CPU); the final evaluation
uses the configured extractor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import metrics
from .features import random_cnn_extractor
from .generate import generate

HEALTH_FIELDS = ["epoch", "step", "kid", "kid_std", "diversity_ratio", "d_acc_real", "d_acc_fake", "augment_p",
                 "collapse_warning", "wall_time_s"]
KID_SUBSETS = 20
DIVERSITY_PAIRS = 200


@dataclass
class QualityCheck:
    kid: float
    kid_std: float
    diversity_ratio: float  # (1 - MS-SSIM) of generated pairs over that of real pairs: 1 = as diverse as real
    collapsing: bool  # diversity below the evaluation's collapse flag


class QualityMonitor:
    """Features and diversity of the training images, computed once; `check(generator)` scores a
    fixed noise sample, so successive checks differ only by the generator."""

    def __init__(self, real_images: np.ndarray, n_generated: int, seed: int):
        self.n_generated, self.seed = n_generated, seed
        self.extractor = random_cnn_extractor(real_images.shape[1])
        features = self.extractor.extract(real_images)
        self.mean, self.std = features.mean(0), features.std(0) + 1e-6
        self.real_features = (features - self.mean) / self.std
        self.real_msssim, _ = metrics.mean_pairwise_msssim(real_images, DIVERSITY_PAIRS, seed)

    def check(self, generator) -> QualityCheck:
        images, _ = generate(generator, self.n_generated, seed=self.seed)
        features = (self.extractor.extract(images) - self.mean) / self.std
        kid, kid_std = metrics.kid(features, self.real_features, subset_size=100, subsets=KID_SUBSETS, seed=self.seed)
        generated_msssim, _ = metrics.mean_pairwise_msssim(images, DIVERSITY_PAIRS, self.seed)
        ratio = metrics.diversity_ratio(generated_msssim, self.real_msssim)
        return QualityCheck(kid, kid_std, ratio, ratio < metrics.COLLAPSED_RATIO)
