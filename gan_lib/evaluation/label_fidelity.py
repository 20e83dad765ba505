"""Label fidelity: whether a generator draws the class it is asked for. A classifier trained on real
scans only calls each class's generated images; its accuracy on them, averaged over the classes, is
the classification accuracy score (CAS, Ravuri & Vinyals 2019). Its baseline is the same classifier
on held-out real scans: what images as recognisable as new real scans would score. Per class, the
share called a tumour class stands beside the real share, since a label that does not change what
is drawn shows there first: no-tumour images called tumour as often as tumour images are.
"""

from __future__ import annotations

import numpy as np

from . import classifier as clf


def class_calls(predicted: np.ndarray, labels: np.ndarray, label: int, first_tumour: int) -> dict:
    """How a classifier called the images of class `label`: the share called that class, and the
    share called a tumour class (labels from `first_tumour` up); NaN for a class with no image."""
    mine = predicted[labels == label]
    if not len(mine):
        return {"accuracy": float("nan"), "called_tumour": float("nan"), "images": 0}
    return {"accuracy": float((mine == label).mean()), "called_tumour": float((mine >= first_tumour).mean()),
            "images": int(len(mine))}


def score(calls: dict[int, dict]) -> float:
    """The classes' mean accuracy (balanced: a class with more images counts no more)."""
    return float(np.nanmean([c["accuracy"] for c in calls.values()]))


def label_fidelity(models: list, held_out: np.ndarray, held_out_labels: np.ndarray,
                   generated: list[dict[int, np.ndarray]], names: tuple[str, ...], first_tumour: int) -> dict:
    """CAS and per-class calls of generated images against held-out real ones, mean over `models`
    (real-only classifiers, one per seed); `generated[k]` maps each class made to model k's images."""
    made = sorted(generated[0])
    runs = []
    for model, images in zip(models, generated):
        real = clf.predicted_classes(model, held_out)
        runs.append({
            "generated": {c: class_calls(clf.predicted_classes(model, images[c]), np.full(len(images[c]), c), c,
                                         first_tumour) for c in made},
            "held_out": {c: class_calls(real, held_out_labels, c, first_tumour) for c in made}})
    mean = lambda side, c, key: float(np.mean([r[side][c][key] for r in runs]))  # noqa: E731
    scores = {side: [score(r[side]) for r in runs] for side in ("generated", "held_out")}
    baseline = float(np.mean(scores["held_out"]))
    return {
        "classes": [names[c] for c in made], "classifiers": len(models),
        "score": float(np.mean(scores["generated"])), "score_std": float(np.std(scores["generated"])),
        "held_out_real": baseline, "held_out_real_std": float(np.std(scores["held_out"])),
        "ratio": float(np.mean(scores["generated"])) / baseline if baseline else float("nan"),  # no baseline, no ratio
        "per_class": {names[c]: {
            "generated_accuracy": mean("generated", c, "accuracy"), "held_out_accuracy": mean("held_out", c, "accuracy"),
            "generated_called_tumour": mean("generated", c, "called_tumour"),
            "held_out_called_tumour": mean("held_out", c, "called_tumour"),
            "generated_images": runs[0]["generated"][c]["images"], "held_out_images": runs[0]["held_out"][c]["images"]}
            for c in made}}
