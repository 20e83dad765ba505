"""The evaluation of one training run, written to `<run folder>/metrics.json`: fidelity (KID, FID),
coverage (precision/recall, density/coverage, and per real training scan how near the generated
images come: coverage.csv), scan descriptors against the real set's, diversity against the real
set, memorisation against a real baseline, and whether generated images help a tumour classifier
tested on held-out real images the GAN never saw.

Each stage is timed (`timings_s`); settings come from the run's own config.json, and only the
evaluation's parameters (n_generated, feature_extractor, ...) come from the caller.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from ..base.files import replacing
from ..base.paths import resolve
from ..base.progress import Stopwatch
from ..config import EVALUATION_FIELDS, GANConfig
from ..data.storage import load_processed, split_sha256
from ..records.evaluation import EvaluationRecord, read_evaluation, write_evaluation
from ..records.manifest import DatasetManifest
from ..records.run import RUN_RECORD
from ..runs.folder import check_same_data, library_versions, recorded_dataset, recorded_settings
from ..runs.generate import classes_of, default_labels, generate, generator_step, load_generator, takes_label
from ..runs.location import run_lock, run_path
from . import descriptors, metrics
from .features import FeatureExtractor, choose_extractor
from .utility import classifier_data, utility


def run_config(cfg: GANConfig) -> GANConfig:
    """The run's own settings (from its config.json), with the evaluation parameters of `cfg` and
    its folder: a copied or renamed run folder is evaluated where it is, never where it was made."""
    path = run_path(cfg) / RUN_RECORD
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: no training run named {cfg.run_name!r} under "
                                f"{resolve(cfg.output_root)}: run 04_train first, with this run_name and output_root "
                                "(on Colab: the same workspace).")
    now = {name: getattr(cfg, name) for name in (*EVALUATION_FIELDS, "run_name", "output_root")}
    return GANConfig.from_overrides(**{**recorded_settings(run_path(cfg)), **now})


@dataclass
class Evaluation:
    """What the notebook shows: metrics.json's record plus the images behind the figures."""
    record: EvaluationRecord
    generated: np.ndarray
    generated_labels: np.ndarray | None  # a class-conditional generator's labels (generate.default_labels); else None
    train: np.ndarray
    train_labels: np.ndarray
    nearest_ssim: np.ndarray  # per generated image: SSIM to its nearest training image ...
    nearest_index: np.ndarray  # ... and that image's index in `train`
    per_real: dict  # per training image: nearest generated image by features (metrics.per_real_coverage)
    scan_descriptors: dict  # "real (training)", "generated" (and "held-out real") -> descriptor arrays
    class_names: tuple[str, ...]  # each label's name, by number


@dataclass
class RunImages:
    """A run's real images, a generated sample, and their features (standardised on the training
    images when the extractor asks for it)."""
    cfg: GANConfig
    gan_manifest: DatasetManifest
    generator: keras.Model
    train: np.ndarray
    train_labels: np.ndarray
    held_out: np.ndarray
    held_out_labels: np.ndarray
    generated: np.ndarray
    extractor: FeatureExtractor
    f_train: np.ndarray
    f_held: np.ndarray | None
    f_gen: np.ndarray

    @property
    def kind(self) -> str:
        return "phantom" if self.gan_manifest.dataset.synthetic else "real"


def run_images(cfg: GANConfig, watch: Stopwatch) -> RunImages:
    """The run's data (checked against what it trained on), n_generated images and the features."""
    run_dir = run_path(cfg)
    with watch("load data and generate"):
        path = recorded_dataset(run_dir, cfg)
        train, train_labels, gan_manifest = load_processed(path, "train")
        check_same_data(run_dir, path, split_sha256(train, train_labels), gan_manifest)
        held_out, held_out_labels, _ = load_processed(path, "test")
        generator = load_generator(run_dir, cfg.which_generator)
        generated, _ = generate(generator, cfg.n_generated, seed=cfg.seed)
    with watch("features"):
        extractor = choose_extractor(cfg.feature_extractor, resolve(cfg.data_root) / "weights", cfg.image_size)
        f_train, f_held, f_gen = features(extractor, train, held_out, generated)
    return RunImages(cfg, gan_manifest, generator, train, train_labels, held_out, held_out_labels, generated, extractor,
                     f_train, f_held, f_gen)


def features(extractor, train: np.ndarray, held_out: np.ndarray, generated: np.ndarray) -> tuple:
    """Features of the training, held-out (None if there are none) and generated images,
    standardised on the training images' when the extractor asks for it."""
    f_train, f_gen = extractor.extract(train), extractor.extract(generated)
    f_held = extractor.extract(held_out) if len(held_out) else None
    if extractor.standardise:
        mean, std = metrics.standardiser(f_train)
        f_gen, f_train = (f_gen - mean) / std, (f_train - mean) / std
        f_held = None if f_held is None else (f_held - mean) / std
    return f_train, f_held, f_gen


def per_class_section(run: RunImages, kid_args: dict) -> dict:
    """For a class-conditional generator: each class made alone against that class's training
    images, features standardised on them as a one-class run's are, so its tumour figures compare
    with a tumour-only run's (KID, FID, coverage, the scan descriptors, and the held-out baseline of
    the class). A class drawn unlike its real scans in a way a tumour changes (a one-sided lesion
    lowers a head's symmetry) shows in its descriptors."""
    section = {}
    names = run.cfg.class_names()
    for label in reversed(range(len(names))):  # tumour (1) first, as ever with two classes
        name = names[label]
        made, _ = generate(run.generator, run.cfg.n_generated, seed=run.cfg.seed, label=label)
        train, held_out = run.train[run.train_labels == label], run.held_out[run.held_out_labels == label]
        f_train, f_held, f_made = features(run.extractor, train, held_out, made)
        real = descriptors.describe(train)
        section[name] = {"generated_vs_train": _kid_fid(f_made, f_train, kid_args),
                         "coverage": coverage_section(f_train, f_made, f_held, run.cfg.seed)[0],
                         "descriptors": {"generated_vs_train": descriptors.compare(real, descriptors.describe(made))}}
        if f_held is not None and len(f_held) > 1:
            section[name]["baseline_held_out_vs_train"] = _kid_fid(f_held, f_train, kid_args)
            section[name]["descriptors"]["baseline_held_out_vs_train"] = descriptors.compare(
                real, descriptors.describe(held_out))
    return section


def coverage_and_descriptors(run: RunImages, watch: Stopwatch) -> tuple[dict, dict, dict, dict]:
    """metrics.json's coverage and descriptors sections, with the per-scan arrays behind their
    figures (`per_real` goes into coverage.csv, written beside metrics.json)."""
    with watch("coverage"):
        coverage, per_real = coverage_section(run.f_train, run.f_gen, run.f_held, run.cfg.seed)
    with watch("scan descriptors"):
        real_name = f"{run.kind} (training)"
        scans = {real_name: descriptors.describe(run.train), "generated": descriptors.describe(run.generated)}
        described = {"generated_vs_train": descriptors.compare(scans[real_name], scans["generated"])}
        if len(run.held_out):
            scans[f"held-out {run.kind}"] = descriptors.describe(run.held_out)
            described["baseline_held_out_vs_train"] = descriptors.compare(scans[real_name], scans[f"held-out {run.kind}"])
    return coverage, described, per_real, scans


def add_coverage(cfg: GANConfig) -> EvaluationRecord:
    """Coverage and descriptors for a run evaluated before they existed (its metrics.json has them
    as None): its metrics.json gains the two sections (the rest untouched) and the run folder coverage.csv."""
    cfg = run_config(cfg)
    record = read_evaluation(run_path(cfg))
    run = run_images(cfg, Stopwatch())
    record.coverage, record.descriptors, per_real, _ = coverage_and_descriptors(run, Stopwatch())
    write_coverage_csv(run_path(cfg) / "coverage.csv", per_real, run.gan_manifest)
    write_evaluation(run_path(cfg), record)
    return record


def evaluate_run(cfg: GANConfig) -> Evaluation:
    """All metrics for the run `cfg.run_name`; writes metrics.json into the run folder, holding its
    lock: a run that is training (or being evaluated) is refused, naming the process."""
    with run_lock(run_path(run_config(cfg))):
        return _evaluate_run(cfg)


def _evaluate_run(cfg: GANConfig) -> Evaluation:
    cfg = run_config(cfg)
    watch = Stopwatch()
    run_dir = run_path(cfg)
    run = run_images(cfg, watch)
    train, held_out, generated, generator = run.train, run.held_out, run.generated, run.generator
    f_train, f_held, f_gen, extractor, kind = run.f_train, run.f_held, run.f_gen, run.extractor, run.kind
    synthetic = run.gan_manifest.dataset.synthetic
    data = classifier_data(cfg, run.gan_manifest)

    with watch("KID and FID"):
        kid_args = dict(subset_size=cfg.kid_subset_size, subsets=cfg.kid_subsets, seed=cfg.seed)
        half = len(train) // 2
        order = np.random.default_rng(cfg.seed).permutation(len(train))
        fidelity = {
            "feature_extractor": extractor.name, "feature_extractor_note": extractor.description,
            "generated_vs_train": _kid_fid(f_gen, f_train, kid_args),
            "baseline_train_half_vs_half": _kid_fid(f_train[order[:half]], f_train[order[half:]], kid_args),
        }
        if f_held is not None and len(f_held) > 1:
            fidelity["baseline_held_out_vs_train"] = _kid_fid(f_held, f_train, kid_args)
        if takes_label(generator):
            fidelity["per_class"] = per_class_section(run, kid_args)
    coverage, described, per_real, scans = coverage_and_descriptors(run, watch)
    with watch("diversity (MS-SSIM)"):
        diverse = metrics.diversity(generated, train, pairs=cfg.diversity_pairs, seed=cfg.seed)
    with watch("memorisation (SSIM to every training image)"):
        memo, nearest_ssim, nearest_index = metrics.memorisation(generated, train, held_out, cfg.near_copy_ssim)
        distance, _ = metrics.nearest_feature_distance(f_gen, f_train)
        real_distance, _ = metrics.nearest_feature_distance(f_train, f_train, exclude_same_index=True)
        memo["feature_nn_distance_median"] = float(np.median(distance))
        memo["real_feature_nn_distance_median"] = float(np.median(real_distance))
    utility_result = utility(cfg, data, generator, cfg.classes, watch, kind)

    warnings = []
    if diverse["collapsed"]:
        warnings.append(f"MODE COLLAPSE: generated diversity is {diverse['diversity_ratio']:.0%} of the real set's.")
    elif diverse["less_diverse"]:
        warnings.append(f"Generated images are markedly less diverse than the real ones "
                        f"({diverse['diversity_ratio']:.0%} of the real set's diversity).")
    if "baseline_held_out_vs_train" in coverage:
        matched, base = coverage["generated_vs_train_matched"], coverage["baseline_held_out_vs_train"]
        for name in ("coverage", "recall"):
            if metrics.falls_short(matched[name], base[name]):
                warnings.append(f"LOW {name.upper()}: {matched[name]:.2f} against {base[name]:.2f} for held-out {kind} "
                                f"images (same set size): some kinds of training scan are never generated "
                                "(coverage.csv lists them, least covered first).")
    if memo["memorised"]:
        warnings.append(f"MEMORISATION: {memo['generated_near_copy_share']:.0%} of generated images are near-copies "
                        f"(SSIM >= {cfg.near_copy_ssim}) of training images; real baseline "
                        f"{memo['baseline_near_copy_share']:.0%}.")
    if extractor.name != "inception_v3_imagenet":
        warnings.append("KID/FID use random-CNN features, not InceptionV3 (weights unavailable).")
    for w in warnings:
        print("WARNING:", w)
    record = EvaluationRecord(
        run=run_dir.name, config=cfg.to_dict(), generator_step=generator_step(run_dir, cfg.which_generator),
        synthetic_data=synthetic, n_generated=len(generated),
        n_train_real=len(train), n_held_out_real=len(held_out), fidelity=fidelity, coverage=coverage,
        descriptors=described, diversity=diverse, memorisation=memo, utility=utility_result, warnings=warnings,
        timings_s=watch.times, versions=library_versions())
    # the evaluation's two files, one just after the other at its very end: a kill before leaves both old
    write_coverage_csv(run_dir / "coverage.csv", per_real, run.gan_manifest)
    write_evaluation(run_dir, record)
    print(f"wrote {run_dir / 'metrics.json'} and coverage.csv")
    generated_labels = default_labels(0, len(generated), classes_of(generator)) if takes_label(generator) else None
    return Evaluation(record, generated, generated_labels, train, run.train_labels, nearest_ssim, nearest_index,
                      per_real, scans, run.cfg.class_names())


def coverage_section(f_train: np.ndarray, f_gen: np.ndarray, f_held, seed: int) -> tuple[dict, dict]:
    """metrics.json's coverage: precision/recall and density/coverage of the generated images
    against the training images, of as many generated images as there are held-out ones (the
    baseline's set size, which moves recall and coverage), and of the held-out real images (the
    baseline); per training image, its nearest generated image."""
    section = {"k_precision_recall": metrics.PRECISION_RECALL_K, "k_density_coverage": metrics.DENSITY_COVERAGE_K,
               "generated_vs_train": {**metrics.coverage_metrics(f_train, f_gen), "n": len(f_gen)}}
    if f_held is not None and len(f_held) > metrics.DENSITY_COVERAGE_K:
        n = min(len(f_held), len(f_gen))  # fewer generated than held-out images: all of them (the row says n)
        section["generated_vs_train_matched"] = metrics.matched_coverage(f_train, f_gen, n, seed=seed)
        section["baseline_held_out_vs_train"] = {**metrics.coverage_metrics(f_train, f_held), "n": len(f_held)}
    per_real = metrics.per_real_coverage(f_train, f_gen)
    section["train_scans_not_covered"] = float((per_real["ratio"] > 1).mean())
    return section, per_real


def write_coverage_csv(path: Path, per_real: dict, gan_manifest: DatasetManifest) -> None:
    """One row per training image, least covered first: its source file, the distance to the
    nearest generated image (its index in the evaluation's sample) and that over its own k-NN
    radius (above 1: no generated image as near as its real neighbours)."""
    files = [e["source_path"] for e in gan_manifest.images if e["split"] == "train"]
    if len(files) != len(per_real["ratio"]):
        raise RuntimeError(f"the manifest lists {len(files)} training images, the data file {len(per_real['ratio'])}")
    with replacing(path, newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["train_index", "source_path", "ratio_to_radius", "distance", "radius", "nearest_generated"])
        for i in np.argsort(per_real["ratio"])[::-1]:
            writer.writerow([int(i), files[i], f"{per_real['ratio'][i]:.4f}", f"{per_real['distance'][i]:.4f}",
                             f"{per_real['radius'][i]:.4f}", int(per_real["nearest_index"][i])])


def _kid_fid(a: np.ndarray, b: np.ndarray, kid_args: dict) -> dict:
    mean, std = metrics.kid(a, b, **kid_args)
    return {"kid": mean, "kid_std": std, "fid": metrics.fid(a, b), "n": [len(a), len(b)]}
