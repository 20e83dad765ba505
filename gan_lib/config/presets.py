"""Presets: named model and training settings (`make train PRESET=...`, `make quality`), and which
one the defaults train."""

from __future__ import annotations

# Presets: named model and training settings (`make train PRESET=...`, `make quality`). Each is
# complete, so a preset means the same run whatever the defaults are; the schedule, batch size,
# seed and data are left to the run. The report's GAN as it trained: its final models, BCE, Adam
# 2e-4, nothing added.
REPORT = {"arch": "report", "learning_rate": 2e-4, "loss": "bce", "augment": "", "augment_p": 1.0,
          "ada_target": 0.0, "minibatch_stddev": False, "r1_gamma": 0.0, "r1_every": 1, "ema_decay": 0.0,
          "reuse_fakes": False, "mirror": False, "symmetry_channel": False, "real_label": 1.0,
          "label_every_block": False, "mismatched_labels": False}
# Small-data training: adaptive augmentation of everything D sees, and a moving average of G.
DATA_EFFICIENT = {"augment": "translation,cutout,brightness,contrast", "augment_p": 0.0, "ada_target": 0.8,
                  "ema_decay": 0.999}
# The report's models trained for small data, with D seeing its batch's spread and the R1 penalty;
# trained on both classes, G's every block also takes the label and D must tell a real scan under
# the wrong label from one under its own.
ADA_MBSTD_R1 = {**REPORT, **DATA_EFFICIENT, "minibatch_stddev": True, "r1_gamma": 1.0, "label_every_block": True,
                "mismatched_labels": True}
PRESETS: dict[str, dict] = {
    "report": REPORT,
    "report-ada": {**REPORT, **DATA_EFFICIENT},
    "report-ada-mbstd": {**REPORT, **DATA_EFFICIENT, "minibatch_stddev": True},
    "report-ada-mbstd-r1": ADA_MBSTD_R1,
    "report-ada-mbstd-r1-gamma4": {**ADA_MBSTD_R1, "r1_gamma": 4.0},
    # D also sees each image minus its mirror image, so it can compare a head's two halves
    "report-ada-mbstd-r1-sym": {**ADA_MBSTD_R1, "symmetry_channel": True},
    # report-ada-mbstd-r1 computed with less work per step: R1 on every 16th step only, weighted 16x
    # (StyleGAN2's lazy regularisation), and one G forward per step (`reuse_fakes`)
    "report-ada-mbstd-r1-lean": {**ADA_MBSTD_R1, "r1_every": 16, "reuse_fakes": True},
    "resize-sn": {**REPORT, **DATA_EFFICIENT, "arch": "resize-sn", "loss": "hinge"},
}
# What GANConfig's defaults (and so the notebooks') train: the preset that measured best (results/). Its
# leaner form trains faster end to end but scores worse over four seeds, from its lazy R1
# (docs/hardware.md). Its table is the one place the defaults of the settings a preset sets are written.
DEFAULT_PRESET = "report-ada-mbstd-r1"
PRESET_DEFAULTS = PRESETS[DEFAULT_PRESET]
