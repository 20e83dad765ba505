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
import dataclasses
import json
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from ..base.files import replacing, write_json
from ..base.paths import resolve
from ..config import EVALUATION_FIELDS, GANConfig
from ..data.images import CLASS_LABELS
from ..data.phantom import SYNTHETIC_LABEL
from ..data.storage import ensure_processed, load_processed, split_sha256
from ..runs.folder import check_same_data, library_versions, recorded_dataset, recorded_settings, run_lock, run_path
from ..runs.generate import default_labels, generate, load_generator, takes_label
from . import classifier as clf
from . import descriptors, metrics
from .features import FeatureExtractor, choose_extractor


def run_config(cfg: GANConfig) -> GANConfig:
    """The run's own settings (from its config.json), with the evaluation parameters of `cfg` and
    its folder: a copied or renamed run folder is evaluated where it is, never where it was made."""
    path = run_path(cfg) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: no training run named {cfg.run_name!r} under "
                                f"{resolve(cfg.output_root)}: run 04_train first, with this run_name and output_root "
                                "(on Colab: the same workspace).")
    now = {name: getattr(cfg, name) for name in (*EVALUATION_FIELDS, "run_name", "output_root")}
    return GANConfig.from_overrides(**{**recorded_settings(run_path(cfg)), **now})


def both_classes_file(cfg: GANConfig, gan_manifest: dict) -> Path:
    """The tumour + no-tumour file of the run's data source and size (made here if missing, from
    the raw folder the run's data came from: the classifier needs both classes whatever the GAN
    trained on)."""
    both = dataclasses.replace(cfg, classes="both", seed=gan_manifest["dataset"]["seed"])
    if cfg.data_source in ("local", "drive"):
        both = dataclasses.replace(both, data_dir=gan_manifest["dataset"]["source_root"])
    return ensure_processed(both)


@dataclass
class Evaluation:
    """What the notebook shows: metrics.json's content plus the images behind the figures."""
    metrics: dict
    generated: np.ndarray
    generated_labels: np.ndarray | None  # a class-conditional generator's labels (generate.default_labels); else None
    train: np.ndarray
    train_labels: np.ndarray
    nearest_ssim: np.ndarray  # per generated image: SSIM to its nearest training image ...
    nearest_index: np.ndarray  # ... and that image's index in `train`
    per_real: dict  # per training image: nearest generated image by features (metrics.per_real_coverage)
    scan_descriptors: dict  # "real (training)", "generated" (and "held-out real") -> descriptor arrays


class Stopwatch:
    def __init__(self):
        self.times: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        yield
        self.times[name] = round(time.perf_counter() - start, 2)
        print(f"[{name}] {self.times[name]:.1f} s", flush=True)


def classifier_data(cfg: GANConfig, gan_manifest: dict) -> dict:
    """Real train/test images of both classes; any image the GAN trained on is kept out of the
    test split (a check by hash, whatever files and seeds made the two data files)."""
    path = both_classes_file(cfg, gan_manifest)
    x_train, y_train, manifest = load_processed(path, "train")
    x_test, y_test, _ = load_processed(path, "test")
    test_hashes = [e["sha256"] for e in manifest["images"] if e["split"] == "test"]
    seen = {e["sha256"] for e in gan_manifest["images"] if e["split"] == "train"}
    clean = np.array([h not in seen for h in test_hashes], bool)
    if not clean.all():
        print(f"WARNING: {int((~clean).sum())} held-out images of {path.name} were in the GAN's training set "
              "(different split settings); they are left out of the classifier's test set.")
    return {"file": path.name, "x_train": x_train, "y_train": y_train, "x_test": x_test[clean],
            "y_test": y_test[clean], "excluded_from_test": int((~clean).sum())}


# Draw k of the generated training images comes from noise seed `seed + 1 + DRAW_SEED_STEP * k`: apart
# from the seeds of the measured sample, and draw 0 is the one every evaluation used before each
# classifier seed had its own draw.
DRAW_SEED_STEP = 1000


def synthetic_count(cfg: GANConfig, y_train: np.ndarray, label: int) -> int:
    """synthetic_per_real generated images per real training image of class `label`."""
    return int(round(cfg.synthetic_per_real * (y_train == label).sum()))


def class_images(generator, cfg: GANConfig, y_train: np.ndarray, label: int, draw: int) -> np.ndarray:
    """`synthetic_count` generated images of class `label`, draw number `draw` (a one-class
    generator makes its only class)."""
    n = synthetic_count(cfg, y_train, label)
    seed = cfg.seed + 1 + DRAW_SEED_STEP * draw
    return generate(generator, n, seed=seed, label=label if takes_label(generator) else None)[0]


def utility(cfg: GANConfig, data: dict, generator, run_classes: str, watch: Stopwatch, kind: str) -> dict:
    """Classifier accuracy/AUC on held-out real images: trained on real only, and on real plus
    generated images of the class the GAN makes; several seeds each (mean and spread). Classifier
    seed k trains on generated draw k, so the spread also holds how much the result depends on which
    generated images were drawn (on the Kaggle set's held-out scans, more than on the classifier's
    seed: README). `kind` names the data in the conditions: "real", or "phantom" for the synthetic
    stand-in."""
    if len(data["x_test"]) == 0 or len(np.unique(data["y_test"])) < 2:
        return {"skipped": "no held-out real images of both classes (holdout=0 uses every image for "
                           "training, as the report did): nothing to test a classifier on"}
    x_real, y_real = data["x_train"], data["y_train"]

    def with_real(x, y):
        return np.concatenate([x_real, x]), np.concatenate([y_real, y])

    training_sets = {kind: lambda draw: (x_real, y_real)}  # a classifier seed's training set, by its draw
    if takes_label(generator):
        def both_classes(draw):
            made = {label: class_images(generator, cfg, y_real, label, draw) for label in CLASS_LABELS.values()}
            return (np.concatenate(list(made.values())),
                    np.concatenate([np.full(len(x), label) for label, x in made.items()]))
        n = sum(synthetic_count(cfg, y_real, label) for label in CLASS_LABELS.values())
        training_sets[f"{kind} + {n} generated (both classes)"] = lambda draw: with_real(*both_classes(draw))
        training_sets[f"generated only ({n}): train on synthetic, test on {kind}"] = both_classes
        tstr = "see the 'generated only' condition"
    elif run_classes in CLASS_LABELS:
        label = CLASS_LABELS[run_classes]
        n = synthetic_count(cfg, y_real, label)
        training_sets[f"{kind} + {n} generated '{run_classes}'"] = lambda draw: with_real(
            class_images(generator, cfg, y_real, label, draw), np.full(n, label))
        tstr = ("skipped: the generator makes one class only (classes=" + run_classes +
                "); train-on-synthetic needs both")
    else:
        tstr = "skipped: the generator was trained on both classes without labels (not a conditional arch)"
    results = {}
    for name, training_set in training_sets.items():
        with watch(f"classifier: {name}"):
            scores = []
            for s in range(cfg.classifier_seeds):
                x, y = training_set(s)
                scores.append(clf.evaluate(clf.train_classifier(x, y, seed=cfg.seed + s, epochs=cfg.classifier_epochs),
                                           data["x_test"], data["y_test"]))
        acc, auc = [s.accuracy for s in scores], [s.auc for s in scores]
        results[name] = {"accuracy_mean": float(np.mean(acc)), "accuracy_std": float(np.std(acc)),
                         "auc_mean": float(np.mean(auc)), "auc_std": float(np.std(auc)),
                         "accuracy": acc, "auc": auc, "train_images": len(y)}
    return {"test_images": len(data["y_test"]), "test_per_class": np.bincount(data["y_test"], minlength=2).tolist(),
            "excluded_from_test": data["excluded_from_test"], "seeds": cfg.classifier_seeds,
            "epochs": cfg.classifier_epochs, "conditions": results, "train_on_synthetic_test_on_real": tstr,
            "generated_draws": f"classifier seed k trains on its own generated draw, noise seed "
                               f"{cfg.seed + 1} + {DRAW_SEED_STEP}·k"}


@dataclass
class RunImages:
    """A run's real images, a generated sample, and their features (standardised on the training
    images when the extractor asks for it)."""
    cfg: GANConfig
    gan_manifest: dict
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
        return "phantom" if self.gan_manifest["dataset"]["synthetic"] else "real"


def run_images(cfg: GANConfig, watch: Stopwatch) -> RunImages:
    """The run's data (checked against what it trained on), n_generated images and the features."""
    run_dir = run_path(cfg)
    with watch("load data and generate"):
        path = recorded_dataset(run_dir, cfg)
        train, train_labels, gan_manifest = load_processed(path, "train")
        check_same_data(run_dir, path, split_sha256(train, train_labels), gan_manifest)
        held_out, held_out_labels, _ = load_processed(path, "test")
        generator = load_generator(run_dir)
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
    with a tumour-only run's (KID, FID, coverage, and the held-out baseline of the class)."""
    section = {}
    for name, label in CLASS_LABELS.items():
        made, _ = generate(run.generator, run.cfg.n_generated, seed=run.cfg.seed, label=label)
        train, held_out = run.train[run.train_labels == label], run.held_out[run.held_out_labels == label]
        f_train, f_held, f_made = features(run.extractor, train, held_out, made)
        section[name] = {"generated_vs_train": _kid_fid(f_made, f_train, kid_args),
                         "coverage": coverage_section(f_train, f_made, f_held, run.cfg.seed)[0]}
        if f_held is not None and len(f_held) > 1:
            section[name]["baseline_held_out_vs_train"] = _kid_fid(f_held, f_train, kid_args)
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


def add_coverage(cfg: GANConfig) -> dict:
    """Coverage and descriptors for a run evaluated before they existed: its metrics.json gains the
    two sections (the rest untouched) and the run folder coverage.csv."""
    cfg = run_config(cfg)
    path = run_path(cfg) / "metrics.json"
    result = json.loads(path.read_text())
    run = run_images(cfg, Stopwatch())
    result["coverage"], result["descriptors"], per_real, _ = coverage_and_descriptors(run, Stopwatch())
    write_coverage_csv(run_path(cfg) / "coverage.csv", per_real, run.gan_manifest)
    write_json(path, result)
    return result


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
    synthetic = run.gan_manifest["dataset"]["synthetic"]
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
    result = {
        "run": run_dir.name, "config": cfg.to_dict(), "synthetic_data": synthetic,
        "n_generated": len(generated), "n_train_real": len(train), "n_held_out_real": len(held_out),
        "fidelity": fidelity, "coverage": coverage, "descriptors": described, "diversity": diverse,
        "memorisation": memo,
        "utility": utility_result, "warnings": warnings, "timings_s": watch.times, "versions": library_versions(),
    }
    # the evaluation's two files, one just after the other at its very end: a kill before leaves both old
    write_coverage_csv(run_dir / "coverage.csv", per_real, run.gan_manifest)
    write_json(run_dir / "metrics.json", result)
    print(f"wrote {run_dir / 'metrics.json'} and coverage.csv")
    generated_labels = default_labels(0, len(generated)) if takes_label(generator) else None
    return Evaluation(result, generated, generated_labels, train, run.train_labels, nearest_ssim, nearest_index,
                      per_real, scans)


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


def write_coverage_csv(path: Path, per_real: dict, gan_manifest: dict) -> None:
    """One row per training image, least covered first: its source file, the distance to the
    nearest generated image (its index in the evaluation's sample) and that over its own k-NN
    radius (above 1: no generated image as near as its real neighbours)."""
    files = [e["source_path"] for e in gan_manifest["images"] if e["split"] == "train"]
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


def summary_table(result: dict) -> str:
    """metrics.json as a Markdown table (readable as text on a terminal too): each figure in the
    generated column, its real-vs-real baseline beside it (the warnings are printed by evaluate_run
    and kept in metrics.json)."""
    f, d, m, cov = result["fidelity"], result["diversity"], result["memorisation"], result["coverage"]
    kind = "phantom" if result["synthetic_data"] else "real"

    def kid(row):
        return f"{row['kid']:.4f} ± {row['kid_std']:.4f} (FID {row['fid']:.1f})" if row else "-"

    rows = [("KID, generated vs training images", kid(f["generated_vs_train"]), kid(f.get("baseline_held_out_vs_train")))]
    class_names = {"yes": "tumour", "no": "no tumour"}
    rows += [(f"KID, class {name} ({class_names.get(name, name)}) only", kid(c.get("generated_vs_train")),
              kid(c.get("baseline_held_out_vs_train"))) for name, c in f.get("per_class", {}).items()]
    generated = cov.get("generated_vs_train_matched") or cov["generated_vs_train"]
    baseline = cov.get("baseline_held_out_vs_train", {})
    rows += [(f"{name} (n = {generated['n']})", f"{generated[name]:.2f}",
              f"{baseline[name]:.2f}" if baseline else "-") for name in ("precision", "recall", "density", "coverage")]
    rows += [("training scans not covered (coverage.csv)", f"{cov['train_scans_not_covered']:.0%}", ""),
             ("mean pairwise MS-SSIM (diversity)", f"{d['generated_msssim']:.3f} ({d['diversity_ratio']:.0%} of {kind})",
              f"{d['real_msssim']:.3f}"),
             (f"near-copies (SSIM >= {m['near_copy_ssim']})", f"{m['generated_near_copy_share']:.1%}",
              f"{m['baseline_near_copy_share']:.1%}")]
    u = result["utility"]
    rows += ([(f"classifier trained on {name}: AUC", f"{c['auc_mean']:.3f} ± {c['auc_std']:.3f}", "")
              for name, c in u["conditions"].items()] if "conditions" in u else [("classifier utility", u["skipped"], "")])
    header = ["| measure | generated | baseline: held-out " + kind + " vs training |", "|---|---|---|"]
    notes = [f"**{SYNTHETIC_LABEL}: these figures test the pipeline only.**", ""] if result["synthetic_data"] else []
    notes += [f"Features: {f['feature_extractor']}. Classifier AUCs are on held-out {kind} scans.", ""]
    return "\n".join(notes + header + [f"| {a} | {b} | {c} |" for a, b, c in rows])
