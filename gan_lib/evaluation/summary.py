"""metrics.json as a table a person reads: each figure beside its real-vs-real baseline."""

from __future__ import annotations

from ..config import GENERATOR_FILES
from ..data.images import CLASS_TITLES
from ..data.phantom import SYNTHETIC_LABEL
from ..records.evaluation import EvaluationRecord


def summary_table(result: EvaluationRecord) -> str:
    """metrics.json as a Markdown table (readable as text on a terminal too): each figure in the
    generated column, its real-vs-real baseline beside it (the warnings are printed by evaluate_run
    and kept in metrics.json)."""
    f, d, m, cov = result.fidelity, result.diversity, result.memorisation, result.coverage
    kind = "phantom" if result.synthetic_data else "real"

    def kid(row):
        return f"{row['kid']:.4f} ± {row['kid_std']:.4f} (FID {row['fid']:.1f})" if row else "-"

    rows = [("KID, generated vs training images", kid(f["generated_vs_train"]), kid(f.get("baseline_held_out_vs_train")))]
    rows += [(f"KID, class {name}" + (f" ({CLASS_TITLES[name]})" if name in CLASS_TITLES else "") + " only",
              kid(c.get("generated_vs_train")), kid(c.get("baseline_held_out_vs_train")))
             for name, c in f.get("per_class", {}).items()]
    rows += _symmetry_rows(f.get("per_class", {}))
    generated = cov.get("generated_vs_train_matched") or cov["generated_vs_train"]
    baseline = cov.get("baseline_held_out_vs_train", {})
    rows += [(f"{name} (n = {generated['n']})", f"{generated[name]:.2f}",
              f"{baseline[name]:.2f}" if baseline else "-") for name in ("precision", "recall", "density", "coverage")]
    rows += [("training scans not covered (coverage.csv)", f"{cov['train_scans_not_covered']:.0%}", ""),
             ("mean pairwise MS-SSIM (diversity)", f"{d['generated_msssim']:.3f} ({d['diversity_ratio']:.0%} of {kind})",
              f"{d['real_msssim']:.3f}"),
             (f"near-copies (SSIM >= {m['near_copy_ssim']})", f"{m['generated_near_copy_share']:.1%}",
              f"{m['baseline_near_copy_share']:.1%}")]
    u = result.utility
    rows += ([row for name, c in u["conditions"].items() for row in _classifier_rows(name, c)]
             if "conditions" in u else [("classifier utility", u["skipped"], "")])
    rows += _label_rows(u["label_fidelity"]) if u.get("label_fidelity") else []
    header = ["| measure | generated | baseline: held-out " + kind + " vs training |", "|---|---|---|"]
    notes = [f"**{SYNTHETIC_LABEL}: these figures test the pipeline only.**", ""] if result.synthetic_data else []
    notes += [f"Generator: {measured(result)}. Features: {f['feature_extractor']}. Classifier AUCs are on held-out "
              f"{kind} scans.", ""]
    return "\n".join(notes + header + [f"| {a} | {b} | {c} |" for a, b, c in rows])


def measured(result: EvaluationRecord) -> str:
    """Which saved generator the evaluation measured, and its step."""
    name = GENERATOR_FILES[result.config["which_generator"]]
    return name + (f", saved at step {result.generator_step:,}" if result.generator_step is not None else "")


def _classifier_rows(name: str, condition: dict) -> list[tuple[str, str, str]]:
    """A classifier condition's AUC; with more than two classes the macro AUC, then each class's."""
    auc = f"{condition['auc_mean']:.3f} ± {condition['auc_std']:.3f}"
    per_class = condition.get("per_class_auc_mean")
    if not per_class:
        return [(f"classifier trained on {name}: AUC", auc, "")]
    return [(f"classifier trained on {name}: macro AUC over {len(per_class)} classes", auc, ""),
            (f"classifier trained on {name}: AUC per class (against the rest)",
             ", ".join(f"{cls} {value:.3f}" for cls, value in per_class.items()), "")]


def _label_rows(fidelity: dict) -> list[tuple[str, str, str]]:
    """Label fidelity: the real-only classifier's accuracy on each asked-for class (CAS), and the
    share of each class it calls tumour, generated beside held-out real."""
    per_class = fidelity["per_class"]

    def each(key, form):
        return ", ".join(f"{name} {form.format(c[key])}" for name, c in per_class.items())

    return [("label fidelity: a real-trained classifier's accuracy on each asked-for class (CAS)",
             f"{fidelity['score']:.2f} ({fidelity['ratio']:.2f}x held-out); {each('generated_accuracy', '{:.2f}')}",
             f"{fidelity['held_out_real']:.2f}; {each('held_out_accuracy', '{:.2f}')}"),
            ("share called tumour by that classifier, by class", each("generated_called_tumour", "{:.0%}"),
             each("held_out_called_tumour", "{:.0%}"))]


def _symmetry_rows(per_class: dict) -> list[tuple[str, str, str]]:
    """Each class's mean head symmetry, generated beside held-out real: a one-sided lesion lowers it,
    so no-tumour heads drawn as lopsided as tumour heads look like tumours."""
    described = {name: c["descriptors"] for name, c in per_class.items() if "descriptors" in c}
    if not described:
        return []

    def means(side: str, key: str) -> str:
        return ", ".join(f"{name} {d[side]['symmetry'][key]:.2f}" for name, d in described.items()
                         if side in d and key in d[side]["symmetry"])

    return [("head symmetry by class (mirror correlation; training scans: "
             + means("generated_vs_train", "real_mean") + ")", means("generated_vs_train", "generated_mean"),
             means("baseline_held_out_vs_train", "generated_mean"))]
