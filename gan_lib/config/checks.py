"""Every setting's check, by concern: a value the pipeline cannot honour is refused before any work,
naming the setting and what it takes."""

from __future__ import annotations

import math

from .choices import (BEST_BY, CLASS_CHOICES, DATA_SOURCES, FEATURE_EXTRACTORS, GENERATOR_FILES, KAGGLE_DATASET,
                      KAGGLE_HANDLE, MAX_NAME_BYTES, PHANTOM_LAYOUTS, PRECISIONS, STRATEGIES, SWITCHES, parse_class_map)
from .presets import PRESETS

AT_LEAST_ONE = ("noise_dim", "epochs", "steps_per_epoch", "batch_size", "checkpoint_every", "log_every", "n_generated",
                "kid_subset_size", "kid_subsets", "diversity_pairs", "classifier_seeds", "classifier_epochs", "r1_every")


def check(cfg) -> None:
    """Raise ValueError on the first setting of `cfg` (a GANConfig) that cannot be honoured."""
    if cfg.preset not in PRESETS:
        raise ValueError(f"preset={cfg.preset!r}; choose one of {sorted(PRESETS)}")
    for name, value in cfg.to_dict().items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{name}={value}: must be a finite number")
    for name in AT_LEAST_ONE:
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name}={getattr(cfg, name)}: must be at least 1")
    for check_group in (check_data, check_training, check_engine, check_run, check_evaluation):
        check_group(cfg)


def check_data(cfg) -> None:
    if cfg.data_source not in DATA_SOURCES:
        raise ValueError(f"data_source={cfg.data_source!r}; choose one of {DATA_SOURCES}")
    parse_class_map(cfg.class_map)
    if not KAGGLE_HANDLE.fullmatch(cfg.kaggle_dataset):
        raise ValueError(f"kaggle_dataset={cfg.kaggle_dataset!r}: owner/name/versions/N, pinned to a version "
                         f"(e.g. {KAGGLE_DATASET}), so every run reads the same files")
    if "/" in cfg.test_folder or "\\" in cfg.test_folder or cfg.test_folder in (".", ".."):
        raise ValueError(f"test_folder={cfg.test_folder!r}: the name of one folder (e.g. Testing), not a path")
    if cfg.classes not in CLASS_CHOICES:
        raise ValueError(f"classes={cfg.classes!r}; choose one of {CLASS_CHOICES}")
    if cfg.phantom_layout not in PHANTOM_LAYOUTS:
        raise ValueError(f"phantom_layout={cfg.phantom_layout!r}; choose one of {PHANTOM_LAYOUTS}")
    if not 0 < cfg.slice_share <= 1:
        raise ValueError(f"slice_share={cfg.slice_share}: the share of each volume's head slices kept, in (0, 1]")
    if cfg.tumour_min_pixels < 1:
        raise ValueError(f"tumour_min_pixels={cfg.tumour_min_pixels}: at least 1 (a slice the mask misses is no "
                         "tumour)")
    if not cfg.mask_suffix.strip() or "/" in cfg.mask_suffix:
        raise ValueError(f"mask_suffix={cfg.mask_suffix!r}: the ending of a mask's name before .nii(.gz), e.g. _seg")
    if cfg.image_size < 32 or cfg.image_size % 16:
        raise ValueError(f"image_size={cfg.image_size}: use a multiple of 16, at least 32 (64, 128)")
    if cfg.n_images < 0:
        raise ValueError(f"n_images={cfg.n_images}: use 0 for all images or a positive count")
    if not cfg.memory_budget_mb > 0:
        raise ValueError(f"memory_budget_mb={cfg.memory_budget_mb}: a positive number of megabytes")
    if not 0.0 <= cfg.holdout < 1.0:
        raise ValueError(f"holdout={cfg.holdout}: use a fraction in [0, 1)")
    check_name("dataset", cfg.dataset, may_be_empty=True)


def check_training(cfg) -> None:
    if not 0.0 < cfg.learning_rate < 1.0 or not 0.0 <= cfg.beta_1 < 1.0:
        raise ValueError(f"learning_rate={cfg.learning_rate} (in (0, 1), e.g. 2e-4), "
                         f"beta_1={cfg.beta_1} (in [0, 1), e.g. 0.5)")
    if not 0.0 <= cfg.augment_p <= 1.0:
        raise ValueError(f"augment_p={cfg.augment_p}: a probability in [0, 1]")
    if not 0.0 <= cfg.ada_target < 1.0:
        raise ValueError(f"ada_target={cfg.ada_target} (0 = off, else an accuracy in (0, 1), e.g. 0.8)")
    if cfg.r1_gamma < 0:
        raise ValueError(f"r1_gamma={cfg.r1_gamma}: use 0 (off) or a positive weight, e.g. 1")
    if not 0.5 < cfg.real_label <= 1.0 or (cfg.loss != "bce" and cfg.real_label != 1.0):
        raise ValueError(f"real_label={cfg.real_label}: D's BCE target for real images, in (0.5, 1] "
                         f"(1 = the report's, 0.9 = one-sided label smoothing); loss={cfg.loss!r} has no target")
    if not 0.0 <= cfg.ema_decay < 1.0:
        raise ValueError(f"ema_decay={cfg.ema_decay}: use 0 (off) or a decay in (0, 1), e.g. 0.999")


def check_engine(cfg) -> None:
    if cfg.precision not in PRECISIONS:
        raise ValueError(f"precision={cfg.precision!r}; choose one of {PRECISIONS}")
    for name in ("xla", "speed_layers"):
        if getattr(cfg, name) not in SWITCHES:
            raise ValueError(f"{name}={getattr(cfg, name)!r}; choose one of {SWITCHES}")
    if cfg.strategy not in STRATEGIES:
        raise ValueError(f"strategy={cfg.strategy!r}; choose one of {STRATEGIES}")
    if cfg.logical_devices < 0 or cfg.logical_devices == 1:
        raise ValueError(f"logical_devices={cfg.logical_devices}: 0 (the CPU as one device) or at least 2")
    if (cfg.logical_devices or cfg.devices) and cfg.strategy not in ("mirrored", "multiworker"):
        raise ValueError(f"logical_devices={cfg.logical_devices}, devices={cfg.devices!r}: for "
                         f"strategy='mirrored' (or 'multiworker'), not {cfg.strategy!r}")
    # known here for mirrored; gan_lib.training.strategies checks every strategy's count once it is made
    replicas = len(cfg.devices.split(",")) if cfg.devices else cfg.logical_devices
    if cfg.strategy == "mirrored" and replicas and cfg.batch_size % replicas:
        raise ValueError(f"batch_size={cfg.batch_size} must divide by the {replicas} replicas: each takes an "
                         f"equal share of the global batch")
    if not cfg.worker_timeout_s > 0:
        raise ValueError(f"worker_timeout_s={cfg.worker_timeout_s}: a positive number of seconds")


def check_run(cfg) -> None:
    check_name("run_name", cfg.run_name, may_be_empty=False)
    if cfg.kid_every < 0 or cfg.kid_images < 2:
        raise ValueError(f"kid_every={cfg.kid_every} (0 = off), kid_images={cfg.kid_images} (at least 2)")
    if cfg.best_by not in BEST_BY:
        raise ValueError(f"best_by={cfg.best_by!r}; choose one of {BEST_BY}")
    if cfg.which_generator not in GENERATOR_FILES:
        raise ValueError(f"which_generator={cfg.which_generator!r}; choose one of {tuple(GENERATOR_FILES)}")
    if cfg.best_from_step < 0:
        raise ValueError(f"best_from_step={cfg.best_from_step}: 0 (every check picks) or the first step whose check may")
    if cfg.stop_after_checks < 0 or (cfg.stop_after_checks and not cfg.kid_every):
        raise ValueError(f"stop_after_checks={cfg.stop_after_checks}: 0 (off), or a number of the checks kid_every "
                         f"makes (kid_every={cfg.kid_every})")
    if cfg.stop_after_checks and cfg.strategy == "multiworker":
        raise ValueError("stop_after_checks with strategy=multiworker: only the chief checks quality, and the other "
                         "workers would wait for it for ever; stop by `epochs` instead")


def check_evaluation(cfg) -> None:
    if cfg.feature_extractor not in FEATURE_EXTRACTORS:
        raise ValueError(f"feature_extractor={cfg.feature_extractor!r}; choose one of {FEATURE_EXTRACTORS}")
    if not 0.0 < cfg.near_copy_ssim <= 1.0 or cfg.synthetic_per_real < 0:
        raise ValueError(f"near_copy_ssim={cfg.near_copy_ssim} (in (0, 1]), "
                         f"synthetic_per_real={cfg.synthetic_per_real} (at least 0)")


def check_name(name: str, value: str, may_be_empty: bool) -> None:
    """run_name and dataset become folder and file names."""
    if value in (".", "..") or "/" in value or "\\" in value or (not value and not may_be_empty):
        raise ValueError(f"{name}={value!r}: a plain folder or file name (no '/', not '.' or '..')")
    if len(value.encode()) > MAX_NAME_BYTES:
        raise ValueError(f"{name}={value[:40]!r}...: {len(value.encode())} bytes; at most {MAX_NAME_BYTES} "
                         "(a file system allows 255 per name)")
