"""Figures of a run as it trained: the losses and D's outputs, the sample grid after each epoch
(and as a GIF), and the quality checks of health.csv."""

from __future__ import annotations

from pathlib import Path

import cv2
import matplotlib.pyplot as plt
import numpy as np

from ..data.images import SYNTHETIC_TEXT
from ..runs.logs import sample_grids, smooth
from .images import image_grid, label_synthetic


def loss_curves(history: list[dict], title: str = "Losses from history.csv", window: int = 0,
                epochs: list[dict] | None = None, synthetic: bool = False):
    """D and G loss per logged step, and mean D(real) / D(fake): read from the run, never typed in.
    With `window`, the raw values are faint and a trailing mean of that many rows is drawn over
    them; with `epochs` (per-epoch means, `logs.epoch_means`), those are marked at each epoch's end."""
    steps = [r["step"] for r in history]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
    panels = ((axes[0], (("d_loss", "D loss"), ("g_loss", "G loss")), title),
              (axes[1], (("d_real", "mean D(real)"), ("d_fake", "mean D(fake)")), "Discriminator outputs"))
    for ax, series, panel_title in panels:
        for key, label in series:
            values = [r[key] for r in history]
            if window > 1:
                line, = ax.plot(steps, values, alpha=0.25, linewidth=0.8)
                ax.plot(steps, smooth(values, window), color=line.get_color(), label=f"{label} (mean of {window})")
            else:
                line, = ax.plot(steps, values, label=label)
            if epochs:
                ax.plot([e["last_step"] for e in epochs], [e[key] for e in epochs], "o", color=line.get_color(),
                        markeredgecolor="black", label=f"{label}, epoch mean")
        ax.set_xlabel("step")
        ax.set_title(panel_title)
        ax.legend(fontsize=7)
    axes[1].set_ylim(-0.02, 1.02)
    fig.tight_layout()
    return label_synthetic(fig, synthetic)


def sample_evolution(grid_paths: list[Path], max_epochs: int = 10, synthetic: bool = False):
    """Per-epoch sample grids (same noise) side by side; evenly thinned to `max_epochs`, last kept."""
    if len(grid_paths) > max_epochs:
        keep = np.unique(np.linspace(0, len(grid_paths) - 1, max_epochs).round().astype(int))
        grid_paths = [grid_paths[i] for i in keep]
    grids = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in grid_paths]
    return image_grid(grids, titles=[p.stem.replace("_", " ") for p in grid_paths], ncols=min(5, len(grids)),
                      tile=256, suptitle="The fixed noise batch after each epoch", synthetic=synthetic)


def kid_curves(health: dict[str, list[dict]], synthetic: bool = False):
    """KID (mean ± std over subsets; dashed, against the held-out scans), diversity and coverage
    against steps, one line per run, from health.csv as `runs.logs.load_history` reads it (a run
    from before a column was logged has NaN there, so no line); for conditional runs a fourth panel,
    the share of generated images the label check calls their asked-for class beside the held-out
    real scans'. One legend, at the right."""
    from matplotlib.lines import Line2D

    logged = lambda key: any(np.isfinite(r.get(key, np.nan)) for rows in health.values() for r in rows)  # noqa: E731
    labels_logged = logged("label_accuracy")
    fig, axes = plt.subplots(1, 4 if labels_logged else 3, figsize=(20 if labels_logged else 15, 3.4))
    for name, rows in health.items():
        steps, column = [r["step"] for r in rows], lambda key: np.array([r.get(key, np.nan) for r in rows])  # noqa: E731
        kid, std = column("kid"), column("kid_std")
        line, = axes[0].plot(steps, kid, "o-", label=name)
        axes[0].fill_between(steps, kid - std, kid + std, color=line.get_color(), alpha=0.2)
        axes[0].plot(steps, column("kid_held_out"), "s--", color=line.get_color())
        axes[1].plot(steps, column("diversity_ratio"), "o-", color=line.get_color())
        axes[2].plot(steps, column("coverage"), "o-", color=line.get_color())
        axes[2].plot(steps, column("recall"), "s--", color=line.get_color())
        if labels_logged:
            axes[3].plot(steps, column("label_accuracy"), "o-", color=line.get_color())
            axes[3].plot(steps, column("label_accuracy_held_out"), ":", color=line.get_color())
    kids = np.array([r["kid"] for rows in health.values() for r in rows])
    if len(kids) and kids.min() > 0 and kids.max() / kids.min() > 20:  # spans decades: log scale, labelled ticks
        axes[0].set_yscale("log")
    axes[0].set_ylabel("KID")
    kind = "phantom" if synthetic else "real"
    axes[0].set_title("KID during training (random-CNN; lower is better)")
    axes[0].legend([Line2D([], [], color="0.3", marker="o"), Line2D([], [], color="0.3", marker="s", linestyle="--")],
                   ["against the training scans", f"against the held-out {kind} scans"], fontsize=8)
    axes[1].axhline(1.0, color="0.5", linestyle="--")
    axes[1].set_title(f"Diversity over the {kind} set's (dashed: equal)")
    axes[2].set_ylim(0, 1.02)
    if not logged("coverage"):
        axes[2].text(0.5, 0.5, "not logged by these runs\n(trained before health.csv had coverage)",
                     ha="center", va="center", transform=axes[2].transAxes)
    axes[2].set_title(f"Share of the {kind} training images reached")
    axes[2].legend([Line2D([], [], color="0.3", marker="o"), Line2D([], [], color="0.3", marker="s", linestyle="--")],
                   ["coverage", "recall"], fontsize=8, loc="lower right")
    if labels_logged:
        axes[3].set_ylim(0, 1.02)
        axes[3].set_title("Drawn as the label asks (a real-trained classifier)")
        axes[3].legend([Line2D([], [], color="0.3", marker="o"), Line2D([], [], color="0.3", linestyle=":")],
                       ["generated, by asked-for class", f"held-out {kind} scans"], fontsize=8, loc="lower right")
    for ax in axes:
        ax.set_xlabel("step")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.tight_layout()
    fig.legend(handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 0.98))
    return label_synthetic(fig, synthetic)


GIF_MIN_WIDTH = 640  # the evolution GIF's frames are scaled up to at least this many pixels across


def write_evolution_gif(run_dir: Path, out: Path, seconds_per_frame: float = 0.8) -> Path:
    """The per-epoch sample grids (one fixed noise batch) as an animated GIF, epoch number burnt in."""
    from PIL import Image

    frames = []
    for path in sample_grids(run_dir):
        grid = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        scale = -(-GIF_MIN_WIDTH // grid.shape[1])  # whole pixels, so a 64-px grid is not blurred
        grid = cv2.resize(grid, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
        cv2.putText(grid, path.stem.replace("_", " "), (6, grid.shape[0] - 8), cv2.FONT_HERSHEY_SIMPLEX,
                    0.7 * scale, 255, 2 * scale)
        frames.append(Image.fromarray(grid))
    if not frames:
        raise FileNotFoundError(f"No samples/epoch_*.png in {run_dir}: no epoch has finished yet.")
    frames[0].save(out, save_all=True, append_images=frames[1:], duration=int(seconds_per_frame * 1000), loop=0,
                   comment=SYNTHETIC_TEXT.encode())
    return out
