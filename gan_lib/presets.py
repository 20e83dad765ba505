"""Named sets of model and training settings (`make train PRESET=...`, `make quality`). Each is
complete, independent of GANConfig's defaults, so a preset means the same run whatever the defaults
are; the schedule, batch size, seed and data are left to the run.
"""

from __future__ import annotations

# The student report's GAN as it trained: its final models, BCE, Adam 2e-4, nothing added.
REPORT = {"arch": "report", "learning_rate": 2e-4, "loss": "bce", "augment": "", "augment_p": 1.0,
          "ada_target": 0.0, "minibatch_stddev": False, "r1_gamma": 0.0, "ema_decay": 0.0}
# Small-data training: adaptive augmentation of everything D sees, and a moving average of G.
DATA_EFFICIENT = {"augment": "translation,cutout,brightness,contrast", "augment_p": 0.0, "ada_target": 0.8,
                  "ema_decay": 0.999}
PRESETS: dict[str, dict] = {
    "report": REPORT,
    "report-ada": {**REPORT, **DATA_EFFICIENT},
    "report-ada-mbstd": {**REPORT, **DATA_EFFICIENT, "minibatch_stddev": True},
    "report-ada-mbstd-r1": {**REPORT, **DATA_EFFICIENT, "minibatch_stddev": True, "r1_gamma": 1.0},
    "report-ada-mbstd-r1-gamma4": {**REPORT, **DATA_EFFICIENT, "minibatch_stddev": True, "r1_gamma": 4.0},
    "resize-sn": {**REPORT, **DATA_EFFICIENT, "arch": "resize-sn", "loss": "hinge"},
}
# What GANConfig's defaults (and so the notebooks') train: the preset that met issue 5's bars.
DEFAULT_PRESET = "report-ada-mbstd-r1"
