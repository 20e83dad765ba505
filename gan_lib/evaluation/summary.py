"""metrics.json as a table a person reads: each figure beside its real-vs-real baseline."""

from __future__ import annotations

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
    u = result.utility
    rows += ([(f"classifier trained on {name}: AUC", f"{c['auc_mean']:.3f} ± {c['auc_std']:.3f}", "")
              for name, c in u["conditions"].items()] if "conditions" in u else [("classifier utility", u["skipped"], "")])
    header = ["| measure | generated | baseline: held-out " + kind + " vs training |", "|---|---|---|"]
    notes = [f"**{SYNTHETIC_LABEL}: these figures test the pipeline only.**", ""] if result.synthetic_data else []
    notes += [f"Features: {f['feature_extractor']}. Classifier AUCs are on held-out {kind} scans.", ""]
    return "\n".join(notes + header + [f"| {a} | {b} | {c} |" for a, b, c in rows])
