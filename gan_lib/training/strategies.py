"""Where the training step runs: one device (`strategy="default"`, today's path), or replicas under
one of TensorFlow's own `tf.distribute` strategies: `mirrored` (the GPUs of one machine, or a CPU
split into logical devices so the path runs anywhere), `multiworker` (several machines or processes,
from `TF_CONFIG`) and `tpu` (a Colab or Kaggle TPU runtime).

A strategy is made once per process (TensorFlow allows a multi-worker or TPU set-up only once), and
logical devices must be set before TensorFlow starts its devices: a notebook kernel that already
ran TensorFlow work is told to restart.
"""

from __future__ import annotations

import faulthandler
import json
import os
import signal
import socket
import sys
import threading

import tensorflow as tf

from ..base.progress import print_above_bar
from ..config import GANConfig

_MADE: dict[tuple, tf.distribute.Strategy] = {}


def split_cpu(count: int) -> list[str]:
    """The CPU as `count` logical devices (names returned), so a mirrored strategy has replicas on a
    machine without several accelerators; the same split again is a no-op."""
    cpus = tf.config.list_physical_devices("CPU")
    wanted = [tf.config.LogicalDeviceConfiguration()] * count
    if tf.config.get_logical_device_configuration(cpus[0]) != wanted:
        try:
            tf.config.set_logical_device_configuration(cpus[0], wanted)
        except RuntimeError:
            raise RuntimeError(f"logical_devices={count}: TensorFlow started its devices already in this process "
                               "(as one CPU, or split otherwise). Restart the kernel (or process) and run this "
                               "first.") from None
    return [d.name for d in tf.config.list_logical_devices("CPU")]


def make_strategy(cfg: GANConfig) -> tf.distribute.Strategy | None:
    """`cfg.strategy`'s strategy (None for "default": one device, no strategy); made once per
    process. Its replica count must divide `batch_size` (the global batch)."""
    if cfg.strategy == "default":
        return None
    key = (cfg.strategy, cfg.logical_devices, cfg.devices)
    if key not in _MADE:
        if _MADE:
            raise RuntimeError(f"strategy={cfg.strategy!r} ({key}): this process made {next(iter(_MADE))} already, "
                               "and TensorFlow sets devices up once per process. Restart the kernel (or process).")
        _MADE[key] = _new_strategy(cfg)
    strategy = _MADE[key]
    if cfg.batch_size % strategy.num_replicas_in_sync:
        raise ValueError(f"batch_size={cfg.batch_size} must divide by the {strategy.num_replicas_in_sync} replicas of "
                         f"strategy={cfg.strategy!r}: each takes an equal share of the global batch")
    return strategy


def _new_strategy(cfg: GANConfig) -> tf.distribute.Strategy:
    logical = split_cpu(cfg.logical_devices) if cfg.logical_devices else []
    if cfg.strategy == "mirrored":
        devices = [name if name.startswith("/") else f"/{name}" for name in filter(None, cfg.devices.split(","))]
        require_devices(devices)
        gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
        return tf.distribute.MirroredStrategy(devices or gpus or logical or None)
    if cfg.strategy == "multiworker":
        return join_cluster(read_tf_config(), cfg.worker_timeout_s)
    try:  # tpu
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, tf.errors.NotFoundError) as err:
        raise RuntimeError(f"strategy='tpu' found no TPU ({err}). On Colab: Runtime > Change runtime type > TPU.") from None
    return tf.distribute.TPUStrategy(resolver)


def short_name(device: str) -> str:
    """`/job:localhost/replica:0/task:0/device:GPU:0`, `/GPU:0` or `gpu:0` -> `GPU:0`."""
    return device.rsplit("/", 1)[-1].removeprefix("device:").upper()


def require_devices(devices: list[str]) -> None:
    """Devices asked for (`devices`) that this machine lacks are refused, naming those it has: a
    mirrored strategy over missing GPUs would otherwise wait for ever without a step."""
    have = {short_name(d.name) for d in tf.config.list_logical_devices()}
    missing = [d for d in devices if short_name(d) not in have]
    if missing:
        raise RuntimeError(f"devices={','.join(d.lstrip('/') for d in devices)!r}: this machine has no "
                           f"{', '.join(short_name(d) for d in missing)}; it has {', '.join(sorted(have))}.")


def read_tf_config() -> dict:
    """The multi-worker cluster from TF_CONFIG, checked: not set, not JSON, or without `cluster`
    and `task` is one line naming what is wrong, not a traceback from deep inside TensorFlow."""
    guide = "(https://www.tensorflow.org/guide/distributed_training#TF_CONFIG)"
    if "TF_CONFIG" not in os.environ:
        raise RuntimeError(f"strategy='multiworker' reads the cluster from the TF_CONFIG environment variable {guide}; "
                           "it is not set.")
    try:
        config = json.loads(os.environ["TF_CONFIG"])
    except json.JSONDecodeError as err:
        raise RuntimeError(f"TF_CONFIG is not JSON ({err}) {guide}.") from None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(config, dict) or not isinstance(config.get("cluster"), dict) or not isinstance(task, dict) \
            or task.get("type") not in config["cluster"] or not isinstance(task.get("index"), int):
        raise RuntimeError('TF_CONFIG needs {"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", '
                           f'"index": 0}}}}, its task one of the cluster\'s {guide}; it is {os.environ["TF_CONFIG"][:200]!r}.')
    return config


def join_cluster(config: dict, timeout_s: float) -> tf.distribute.Strategy:
    """The multi-worker strategy. TensorFlow blocks while making it until every worker has joined,
    holding Python's lock, so no Python code (a Ctrl-C handler, a timer) can run meanwhile. So the
    workers not answering are named first; Ctrl-C and SIGTERM get their default action (stop the
    process); and a timer in C stops the process after `timeout_s`, printing where it waited."""
    me = config["cluster"][config["task"]["type"]][config["task"]["index"]]
    others = [address for addresses in config["cluster"].values() for address in addresses if address != me]
    silent = [address for address in others if not _answers(address)]
    print_above_bar(f"joining the cluster as {me}: waiting for {', '.join(others) or 'no other worker'}"
                    + (f" (not answering yet: {', '.join(silent)})" if silent else "")
                    + f"; this process stops if they have not all joined within worker_timeout_s={timeout_s:g} s")
    sys.stderr.flush()
    main = threading.current_thread() is threading.main_thread()  # where signal handlers can be set
    handlers = {number: signal.signal(number, signal.SIG_DFL) for number in (signal.SIGINT, signal.SIGTERM)} if main \
        else {}
    faulthandler.dump_traceback_later(timeout_s, exit=True)  # exit code 1, after "Timeout (h:mm:ss)!"
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    finally:
        faulthandler.cancel_dump_traceback_later()
        for number, handler in handlers.items():
            signal.signal(number, handler)


def _answers(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except (OSError, ValueError):
        return False


def is_chief(strategy: tf.distribute.Strategy | None) -> bool:
    """Whether this process writes the run folder: always, except a non-chief multi-worker worker
    (the chief is the task named "chief", else worker 0)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def describe(cfg: GANConfig, strategy: tf.distribute.Strategy | None) -> dict:
    """What config.json records of where the step ran."""
    if strategy is None:
        return {"strategy": "default", "replicas": 1}
    devices = list(getattr(strategy.extended, "worker_devices", ()))  # this process's
    cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {}) if cfg.strategy == "multiworker" else {}
    replicas = strategy.num_replicas_in_sync
    return {"strategy": cfg.strategy, "replicas": replicas, "devices": devices,
            **({"workers": sum(map(len, cluster.values()))} if cluster else {}),
            "per_replica_batch": cfg.batch_size // replicas,
            "batch_norm": "synchronised across replicas" if replicas > 1 else "one replica",
            **({"logical_devices": cfg.logical_devices} if cfg.logical_devices else {})}


def replica_share(draws: dict, batch_size: int) -> dict:
    """This replica's rows of a whole batch's random draws: the replicas together draw exactly what
    one device would."""
    context = tf.distribute.get_replica_context()
    share = batch_size // context.num_replicas_in_sync
    start = context.replica_id_in_sync_group * share
    return tf.nest.map_structure(lambda t: t[start:start + share], draws)


def replica_part(loss, strategy: tf.distribute.Strategy | None):
    """A replica's share of the loss whose gradient the optimiser takes: the optimisers sum the
    replicas' gradients, so each loss (a mean over its share) counts 1/replicas."""
    return loss if strategy is None else loss / strategy.num_replicas_in_sync


def mean_over_replicas(strategy: tf.distribute.Strategy, per_replica: dict) -> dict:
    return {name: strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None) for name, value in per_replica.items()}
