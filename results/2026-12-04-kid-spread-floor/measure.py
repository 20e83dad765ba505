"""The held-out-real KID baseline of split 0 (64 px, both classes, the Kaggle images), per class and
over both, with features standardised as before (mean and spread of the training scans) and with
the spread floored (gan_lib.metrics.standardiser). Writes floor.json beside this file.

    .venv/bin/python results/2026-12-04-kid-spread-floor/measure.py data/processed/<dataset>.npz
"""
import json
import sys
from pathlib import Path

import numpy as np

from gan_lib import metrics
from gan_lib.datasets import load_processed
from gan_lib.features import random_cnn_extractor

path = Path(sys.argv[1])
train, train_labels, _ = load_processed(path, "train")
held, held_labels, _ = load_processed(path, "test")
extractor = random_cnn_extractor(train.shape[1], 0)
rows = {}
for name, pick, held_pick in (("no_tumour", train_labels == 0, held_labels == 0),
                              ("tumour", train_labels == 1, held_labels == 1),
                              ("both_classes", train_labels >= 0, held_labels >= 0)):
    f_train, f_held = extractor.extract(train[pick]), extractor.extract(held[held_pick])
    before = (f_train.mean(0), f_train.std(0) + 1e-6)
    floored = metrics.standardiser(f_train)
    row = {"train_scans": int(pick.sum()), "held_out_scans": int(held_pick.sum()),
           "features_floored": int((floored[1] > before[1] + 1e-12).sum()), "features": int(f_train.shape[1])}
    for label, (mean, spread) in (("before", before), ("floored", floored)):
        kid, kid_std = metrics.kid((f_held - mean) / spread, (f_train - mean) / spread, subset_size=100, subsets=50, seed=0)
        row[f"held_out_kid_{label}"], row[f"held_out_kid_std_{label}"] = kid, kid_std
    rows[name] = row
    print(name, row)
(Path(__file__).parent / "floor.json").write_text(json.dumps({"dataset": path.name, "spread_floor": metrics.SPREAD_FLOOR,
                                                              "rows": rows}, indent=2))
