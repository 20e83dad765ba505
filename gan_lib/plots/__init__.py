"""Figures the notebooks show, each function returning its matplotlib Figure (so notebooks display
it and scripts can save it) and taking images as uint8 or as floats in [-1, 1]. By subject:
`images` (grids, raw files, volumes, histograms), `training` (losses, sample grids, health.csv),
`evaluation` (near-copies, classes, coverage, descriptors, the classifier); import them from here.
"""

from .evaluation import (class_picks, closest_pairs, descriptor_histograms, least_covered, stage_curves, stage_grids,
                         utility_chart)
from .images import (before_after, image_grid, label_synthetic, pixel_histogram, raw_examples, side_by_side,
                     volume_examples)
from .training import kid_curves, loss_curves, sample_evolution, write_evolution_gif

__all__ = ["class_picks", "closest_pairs", "descriptor_histograms", "least_covered", "stage_curves", "stage_grids",
           "utility_chart", "before_after",
           "image_grid", "label_synthetic", "pixel_histogram", "raw_examples", "side_by_side", "volume_examples",
           "kid_curves", "loss_curves", "sample_evolution", "write_evolution_gif"]
