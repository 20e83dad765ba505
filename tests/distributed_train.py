"""Train in a fresh process, as a machine with several devices (or one worker of several) would:
logical devices and multi-worker set-ups exist once per process, so the tests start one each.

    python tests/distributed_train.py '[{"config": {...}, "stop_after_steps": 7}, ...]'

Each job is `train(GANConfig.from_overrides(**config), stop_after_steps)`, in order, in this process.
"""

import json
import sys

from gan_lib.config import GANConfig
from gan_lib.training.loop import train

for job in json.loads(sys.argv[1]):
    train(GANConfig.from_overrides(**job["config"]), stop_after_steps=job.get("stop_after_steps"))
