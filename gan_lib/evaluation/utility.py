"""Whether generated images help a tumour classifier: trained on real scans only, on real plus
generated, and on generated only (train on synthetic, test on real), each tested on held-out real
scans the GAN never saw, over several seeds."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np

from ..base.progress import Stopwatch
from ..config import GANConfig, no_tumour_classes
from ..data.images import CLASS_LABELS
from ..data.storage import ensure_processed, load_processed
from ..records.manifest import DatasetManifest
from ..runs.generate import generate, takes_label
from . import classifier as clf
from .label_fidelity import label_fidelity


def both_classes_file(cfg: GANConfig, gan_manifest: DatasetManifest) -> Path:
    """The tumour + no-tumour file of the run's data source and size, or for classes="all" the run's
    own (made here if missing, from the raw folder the run's data came from: the classifier needs
    both classes whatever the GAN trained on)."""
    both = dataclasses.replace(cfg, classes="all" if cfg.classes == "all" else "both", seed=gan_manifest.dataset.seed)
    if cfg.data_source in ("local", "drive"):
        both = dataclasses.replace(both, data_dir=gan_manifest.dataset.source_root)
    return ensure_processed(both)


def classifier_data(cfg: GANConfig, gan_manifest: DatasetManifest) -> dict:
    """Real train/test images of both classes; any image the GAN trained on is kept out of the
    test split (a check by hash, whatever files and seeds made the two data files)."""
    path = both_classes_file(cfg, gan_manifest)
    x_train, y_train, manifest = load_processed(path, "train")
    x_test, y_test, _ = load_processed(path, "test")
    test_hashes = [e["sha256"] for e in manifest.images if e["split"] == "test"]
    seen = {e["sha256"] for e in gan_manifest.images if e["split"] == "train"}
    clean = np.array([h not in seen for h in test_hashes], bool)
    if not clean.all():
        print(f"WARNING: {int((~clean).sum())} held-out images of {path.name} were in the GAN's training set "
              "(different split settings); they are left out of the classifier's test set.")
    return {"file": path.name, "x_train": x_train, "y_train": y_train, "x_test": x_test[clean],
            "y_test": y_test[clean], "excluded_from_test": int((~clean).sum())}


# Draw k of the generated training images comes from noise seed `seed + 1 + DRAW_SEED_STEP * k`:
# apart from the seeds of the measured sample (noise seed `seed`), and draw 0 keeps the numbers of
# records made when every classifier seed trained on that one draw comparable.
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


def made_labels(generator, run_classes: str, n_classes: int) -> list[int]:
    """The classes a generator makes on request: each class of a conditional one, a one-class run's
    class, none of a two-class run without labels."""
    if takes_label(generator):
        return list(range(n_classes))
    return [CLASS_LABELS[run_classes]] if run_classes in CLASS_LABELS else []


def generated_conditions(cfg: GANConfig, drawn, made: list[int], real: tuple, kind: str) -> tuple[dict, str]:
    """The conditions with generated images, each a classifier seed's training set by its draw
    (`drawn(draw)`: the images of each class made, by label), and what is said of train-on-synthetic."""
    names, (x_real, y_real) = cfg.class_names(), real
    if not made:
        return {}, "skipped: the generator was trained on both classes without labels (not a conditional arch)"
    n = sum(synthetic_count(cfg, y_real, label) for label in made)

    def generated(draw):  # tumour (1) first, as ever with two classes
        images = {label: drawn(draw)[label] for label in reversed(made)}
        return np.concatenate(list(images.values())), np.concatenate([np.full(len(x), c) for c, x in images.items()])

    def with_real(draw):
        x, y = generated(draw)
        return np.concatenate([x_real, x]), np.concatenate([y_real, y])

    if len(made) == 1:
        return ({f"{kind} + {n} generated '{names[made[0]]}'": with_real},
                f"skipped: the generator makes one class only (classes={names[made[0]]}); train-on-synthetic needs both")
    which = "both classes" if len(names) == 2 else f"all {len(names)} classes"
    return ({f"{kind} + {n} generated ({which})": with_real,
             f"generated only ({n}): train on synthetic, test on {kind}": generated}, "see the 'generated only' condition")


def utility(cfg: GANConfig, data: dict, generator, run_classes: str, watch: Stopwatch, kind: str) -> dict:
    """Classifier accuracy/AUC on held-out real images: trained on real only, and on real plus
    generated images of the class the GAN makes; several seeds each (mean and spread). Classifier
    seed k trains on generated draw k, so the spread also holds how much the result depends on which
    generated images were drawn (on the Kaggle set's held-out scans, more than on the classifier's
    seed: README). The real-only classifiers also call each class's generated images: the label
    fidelity (`label_fidelity`). `kind` names the data in the conditions: "real", or "phantom" for
    the synthetic stand-in."""
    names = cfg.class_names()
    missing = [names[c] for c in range(len(names)) if not (data["y_test"] == c).any()]
    if len(names) > 2 and missing and len(data["x_test"]):
        return {"skipped": f"no held-out real images of class {', '.join(missing)}: its AUC against the rest cannot "
                           "be measured, so the classifier is not tested"}
    if len(data["x_test"]) == 0 or len(np.unique(data["y_test"])) < 2:
        return {"skipped": "no held-out real images of both classes (holdout=0 uses every image for "
                           "training, as the report did): nothing to test a classifier on"}
    real = data["x_train"], data["y_train"]
    made = made_labels(generator, run_classes, len(names))
    # Each draw made once: the conditions with generated images and the label fidelity share it
    drawn = functools.cache(lambda draw: {label: class_images(generator, cfg, real[1], label, draw) for label in made})
    with_generated, tstr = generated_conditions(cfg, drawn, made, real, kind)
    results, real_only = {}, []
    for name, training_set in {kind: lambda draw: real, **with_generated}.items():
        with watch(f"classifier: {name}"):
            scores = []
            for s in range(cfg.classifier_seeds):
                x, y = training_set(s)
                model = clf.train_classifier(x, y, seed=cfg.seed + s, epochs=cfg.classifier_epochs,
                                             n_classes=len(names))
                scores.append(clf.evaluate(model, data["x_test"], data["y_test"]))
                real_only += [model] if name == kind else []
        acc, auc = [s.accuracy for s in scores], [s.auc for s in scores]
        results[name] = {"accuracy_mean": float(np.mean(acc)), "accuracy_std": float(np.std(acc)),
                         "auc_mean": float(np.mean(auc)), "auc_std": float(np.std(auc)),
                         "accuracy": acc, "auc": auc, "train_images": len(y)}
        if len(names) > 2:  # auc is then the macro AUC: the mean over the classes, each against the rest
            results[name]["per_class_auc_mean"] = {
                names[c]: float(np.mean([s.per_class_auc[c] for s in scores])) for c in range(len(names))}
    fidelity = label_fidelity(real_only, data["x_test"], data["y_test"],
                              [drawn(s) for s in range(len(real_only))],
                              names, no_tumour_classes(cfg.classes, cfg.class_map)) if made else None
    return {"test_images": len(data["y_test"]), "classes": list(names),
            "test_per_class": np.bincount(data["y_test"], minlength=len(names)).tolist(),
            "excluded_from_test": data["excluded_from_test"], "seeds": cfg.classifier_seeds,
            "epochs": cfg.classifier_epochs, "conditions": results, "train_on_synthetic_test_on_real": tstr,
            "label_fidelity": fidelity,
            "generated_draws": f"classifier seed k trains on its own generated draw, noise seed "
                               f"{cfg.seed + 1} + {DRAW_SEED_STEP}·k"}
