"""One config object that carries a notebook's parameters (or papermill's, or make's) to the code,
and the named presets it starts from.

Every notebook's `parameters` cell uses these names; `GANConfig.from_notebook(globals())` (or
`from_overrides(preset=..., **params)`) applies the preset, then the given values, and checks them
(unknown names and wrong types raise); every stage writes `to_dict()` next to its output, so a
result can be traced back to exactly the settings that made it.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import json
import math
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from .colab import workspace_root
from .files import write_json  # noqa: F401 - re-exported: every JSON record is written this one way

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

# Every notebook's parameters cell starts with this line; papermill's injected cell with the second.
SETTINGS_CELL_MARK = "# Settings"
PAPERMILL_CELL_MARK = "# Parameters"
# Parameters read by the Colab bootstrap and by 00_colab, not settings: name -> its description.
NOTEBOOK_ONLY = {"workspace": "Colab only: the folder under MyDrive holding data, runs and caches",
                 "other_parameters": "any other notebook parameter by name, e.g. {'checkpoint_every': 250}"}

PROJECT_ROOT = Path(__file__).resolve().parent.parent

DATA_SOURCES = ("kaggle", "drive", "local", "phantom")
CLASS_CHOICES = ("yes", "no", "both")
# Settings that shape only a class-conditional run's models (classes="both"): a one-class run trains
# the same whatever they say.
CONDITIONAL_ONLY = ("label_every_block", "mismatched_labels")
# Parameters of the evaluation only: everything else is read back from the run's config.json.
EVALUATION_FIELDS = ("n_generated", "feature_extractor", "kid_subset_size", "kid_subsets", "diversity_pairs",
                     "near_copy_ssim", "classifier_seeds", "classifier_epochs", "synthetic_per_real")
FEATURE_EXTRACTORS = ("auto", "inception", "random_cnn")
# How the training step is computed on this machine, not what it computes (gan_lib.speed chooses "auto").
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
SWITCHES = ("auto", "on", "off")  # xla, speed_layers
ENGINE_FIELDS = ("precision", "xla", "speed_layers")
# Where the step runs: one device, or replicas under a tf.distribute strategy (gan_lib.distribute).
STRATEGIES = ("default", "mirrored", "multiworker", "tpu")
DISTRIBUTE_FIELDS = ("strategy", "logical_devices", "devices", "worker_timeout_s")
# The settings that make a dataset what it is: its name covers them (with `seed`), and a run
# trains on a dataset's, whatever its own say.
DATASET_FIELDS = ("data_source", "data_dir", "kaggle_dataset", "class_map", "test_folder", "classes", "image_size",
                  "n_images", "holdout")
# Pinned (owner/name/versions/N) so every run reads the same bytes, and a populated kagglehub cache works offline.
KAGGLE_DATASET = "navoneel/brain-mri-images-for-brain-tumor-detection/versions/1"
KAGGLE_HANDLE = re.compile(r"[\w.-]+/[\w.-]+/versions/\d+")
FOUR_CLASS_MAP = "yes=glioma,meningioma,pituitary;no=notumor"  # Kaggle's 7,000-image four-class set, as two classes
MAX_NAME_BYTES = 200  # run_name, dataset: a folder or file name, with room for what is added to it
HEADLESS_ENV = "GAN_LIB_HEADLESS"  # set by gan_lib.scripts.run_notebooks for the kernels papermill starts


def setting(default, doc: str):
    """A GANConfig field with its one description: docs/settings.md and the comments of the notebooks'
    parameters cells are written from it (gan_lib.scripts.notebook_cells)."""
    return dataclasses.field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class GANConfig:
    # --- data (notebooks 01 and 02) ---
    data_source: str = setting("kaggle", "kaggle | drive | local | phantom (synthetic, offline)")
    data_dir: str = setting("", "folder holding the class folders (local), or a path under MyDrive (drive)")
    kaggle_dataset: str = setting(KAGGLE_DATASET,
            "kaggle: the dataset's handle, pinned to a version (owner/name/versions/N)")
    class_map: str = setting("",
            "which class folders hold each label (label, then its folders: the four-class set's map is in docs/data.md); "
            "empty: folders named yes/ (tumour) and no/")
    test_folder: str = setting("",
            "empty: hold out `holdout` of each class; a folder name (e.g. Testing): the dataset's own test split")
    data_root: str = setting("data", "where raw/ and processed/ live; relative: under the repo, or the Colab workspace")
    image_size: int = setting(128, "side of the square training images in pixels (64 works too)")
    classes: str = setting("yes", "yes (tumour, as in the report) | no | both (labels kept)")
    n_images: int = setting(0, "seeded subset of this many images; 0: all (the report once used 10)")
    holdout: float = setting(0.2, "share of each class held out for evaluation, never shown to the GAN")
    seed: int = setting(0, "seeds the phantom, the subset, the hold-out split and training")
    dataset: str = setting("", "training: the dataset to train on, by the name 02 printed; empty: the one 02 last wrote")
    memory_budget_mb: float = setting(2048.0,
            "a training split over this (float32 pixels, MB) is written as shards (02) and streamed (04)")

    # --- models and training (notebooks 03 and 04): the report's models and schedule, trained with
    # the preset DEFAULT_PRESET, whose table above gives the defaults of the settings it sets ---
    preset: str = setting(DEFAULT_PRESET,
            "a name in PRESETS (docs/training.md): its settings first, then the ones given; report: the report's GAN as"
            " it was")
    arch: str = setting(PRESET_DEFAULTS["arch"],
            "a name in gan_lib.models.ARCHITECTURES; report: the report's final model")
    noise_dim: int = setting(100, "length of the generator's input noise vector")
    epochs: int = setting(10, "epochs of training (the report: 10)")
    steps_per_epoch: int = setting(3750, "training steps per epoch (the report: 3750)")
    batch_size: int = setting(4, "images per step, drawn with replacement (the report: 4)")
    learning_rate: float = setting(PRESET_DEFAULTS["learning_rate"], "Adam's learning rate, for both G and D")
    beta_1: float = setting(0.5, "Adam's first-moment decay, as in DCGAN")
    loss: str = setting(PRESET_DEFAULTS["loss"],
            "a name in gan_lib.losses.LOSSES (bce: the report's, non-saturating for G)")
    augment: str = setting(PRESET_DEFAULTS["augment"],
            "differentiable augmentation of D's inputs, comma-separated; empty: none (the report)")
    augment_p: float = setting(PRESET_DEFAULTS["augment_p"],
            "probability of each augmentation per image; ADA's start value")
    ada_target: float = setting(PRESET_DEFAULTS["ada_target"],
            ">0: adapt augment_p so D's accuracy on reals stays near this (ADA)")
    minibatch_stddev: bool = setting(PRESET_DEFAULTS["minibatch_stddev"],
            "D also sees its batch's spread (ProGAN), to catch a collapsing G")
    r1_gamma: float = setting(PRESET_DEFAULTS["r1_gamma"],
            ">0: R1 penalty (gamma/2)·|grad of D's logit at reals|^2, against oscillation")
    r1_every: int = setting(PRESET_DEFAULTS["r1_every"],
            "R1 on every n-th step only, weighted n times (lazy regularisation, StyleGAN2)")
    reuse_fakes: bool = setting(PRESET_DEFAULTS["reuse_fakes"],
            "G's update goes through the images D just trained on (one G forward per step, as PyTorch's DCGAN example);"
            " False: fresh noise (the report)")
    mirror: bool = setting(PRESET_DEFAULTS["mirror"],
            "flip each real image left-right with probability 1/2: brains are near mirror images and tumours sit on "
            "either side, so this doubles the data without teaching G anything false")
    symmetry_channel: bool = setting(PRESET_DEFAULTS["symmetry_channel"],
            "D also sees each image minus its left-right mirror image: its convolutions cannot compare a head's two "
            "halves otherwise")
    real_label: float = setting(PRESET_DEFAULTS["real_label"],
            "D's BCE target for real images; 0.9 is one-sided label smoothing (Salimans et al. 2016): a D sure of a "
            "real image is pulled back from certainty")
    label_every_block: bool = setting(PRESET_DEFAULTS["label_every_block"],
            "with classes both (else unused): G gives each class its own gain and bias per channel after every "
            "upsampling block, not only the label's embedding beside the noise")
    mismatched_labels: bool = setting(PRESET_DEFAULTS["mismatched_labels"],
            "with classes both (else unused): D also sees each real image under the other class's label and must call"
            " it generated, so G must draw the class it is asked for")
    ema_decay: float = setting(PRESET_DEFAULTS["ema_decay"],
            ">0: samples and the saved G use a moving average of G's weights")
    kid_every: int = setting(500,
            "steps between KID/diversity checks during training (health.csv, generator_best.keras); 0: off")
    kid_images: int = setting(200, "generated images per KID/diversity check during training")
    run_name: str = setting("tumour-gan", "the run folder is <output_root>/<run_name>")
    output_root: str = setting("outputs/runs",
            "relative: under the repository, or the Drive workspace on Colab (gan_lib.colab)")
    resume: bool = setting(True, "continue a run folder that exists; False refuses to touch it")
    checkpoint_every: int = setting(500, "steps between checkpoints: the most work a crash can lose")
    log_every: int = setting(10, "steps between history.csv rows (and progress-bar updates)")
    precision: str = setting("auto",
            "auto | float32 | mixed_float16 | mixed_bfloat16; auto: by the hardware (docs/hardware.md)")
    xla: str = setting("auto", "auto | on | off: compile the step with XLA; auto: on a GPU/TPU, measured on a CPU")
    speed_layers: str = setting("auto",
            "auto | on | off: the CPU speed layers (gan_lib.layers); auto: measured on a CPU")
    strategy: str = setting("default",
            "default (one device) | mirrored (every local GPU, or `devices`) | multiworker (TF_CONFIG) | tpu")
    logical_devices: int = setting(0,
            ">1: split the CPU into this many logical devices (mirrored replicas on a machine without several "
            "accelerators)")
    devices: str = setting("", "mirrored: the devices to use, e.g. GPU:0,GPU:1; empty: every GPU (or the logical CPUs)")
    worker_timeout_s: float = setting(300.0,
            "multiworker: seconds to wait for every worker of TF_CONFIG to join before stopping with the ones missing")
    tensorboard: bool = setting(False, "also write losses to <run folder>/tensorboard for TensorBoard")

    # --- evaluation of a finished run (notebooks 05 and 06; `make report RUN=<run_name>`) ---
    n_generated: int = setting(500, "generated images the metrics are computed on")
    feature_extractor: str = setting("auto",
            "auto | inception | random_cnn: KID/FID features (auto: InceptionV3 if its weights can be had)")
    kid_subset_size: int = setting(100, "images per KID subset (capped by the smaller set)")
    kid_subsets: int = setting(50, "KID is averaged over this many random subsets; its std is over them")
    diversity_pairs: int = setting(1000, "random image pairs for the mean pairwise MS-SSIM")
    near_copy_ssim: float = setting(0.8, "SSIM to a training image at or above which an image counts as a near-copy")
    classifier_seeds: int = setting(3,
            "tumour-classifier trainings per condition (mean and spread), each on its own draw of generated images")
    classifier_epochs: int = setting(60, "epochs of each tumour-classifier training")
    synthetic_per_real: float = setting(1.0, "generated images added per real training image of the GAN's class")

    @classmethod
    def from_overrides(cls, preset: str | None = None, **overrides) -> "GANConfig":
        """The preset's settings (DEFAULT_PRESET if none), then `overrides`; an override of None keeps
        the preset's value or the default. Unknown names and presets, and wrong types, raise before any work."""
        preset = DEFAULT_PRESET if preset is None else preset
        if preset not in PRESETS:
            raise ValueError(f"preset={preset!r}; choose one of {sorted(PRESETS)}")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise ValueError(f"Unknown config key(s) {unknown}; known keys: {sorted(fields)}")
        given = {name: _check_type(name, value, type(getattr(cls, name)))
                 for name, value in overrides.items() if value is not None}
        cfg = cls(**{**PRESETS[preset], **given, "preset": preset})
        cfg.validate()
        return cfg

    @classmethod
    def from_notebook(cls, namespace: dict) -> "GANConfig":
        """The config of a notebook's parameters cell, as it ran (`notebook_parameters`)."""
        settings = notebook_parameters(namespace)
        return cls.from_overrides(**{k: v for k, v in settings.items() if k not in NOTEBOOK_ONLY})

    def overridden(self) -> dict:
        """The settings that differ from what the preset and the defaults give: what a run chose."""
        base = {**GANConfig().to_dict(), **PRESETS[self.preset], "preset": self.preset}
        return {name: value for name, value in self.to_dict().items() if base[name] != value}

    def validate(self) -> None:
        """Reject values the pipeline cannot honour, with the reason."""
        if self.preset not in PRESETS:
            raise ValueError(f"preset={self.preset!r}; choose one of {sorted(PRESETS)}")
        if self.data_source not in DATA_SOURCES:
            raise ValueError(f"data_source={self.data_source!r}; choose one of {DATA_SOURCES}")
        parse_class_map(self.class_map)
        if not KAGGLE_HANDLE.fullmatch(self.kaggle_dataset):
            raise ValueError(f"kaggle_dataset={self.kaggle_dataset!r}: owner/name/versions/N, pinned to a version "
                             f"(e.g. {KAGGLE_DATASET}), so every run reads the same files")
        if "/" in self.test_folder or "\\" in self.test_folder or self.test_folder in (".", ".."):
            raise ValueError(f"test_folder={self.test_folder!r}: the name of one folder (e.g. Testing), not a path")
        if self.classes not in CLASS_CHOICES:
            raise ValueError(f"classes={self.classes!r}; choose one of {CLASS_CHOICES}")
        if self.image_size < 32 or self.image_size % 16:
            raise ValueError(f"image_size={self.image_size}: use a multiple of 16, at least 32 (64, 128)")
        if self.n_images < 0:
            raise ValueError(f"n_images={self.n_images}: use 0 for all images or a positive count")
        for name, value in self.to_dict().items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{name}={value}: must be a finite number")
        if not self.worker_timeout_s > 0:
            raise ValueError(f"worker_timeout_s={self.worker_timeout_s}: a positive number of seconds")
        if not self.memory_budget_mb > 0:
            raise ValueError(f"memory_budget_mb={self.memory_budget_mb}: a positive number of megabytes")
        if not 0.0 <= self.holdout < 1.0:
            raise ValueError(f"holdout={self.holdout}: use a fraction in [0, 1)")
        if not 0.0 < self.learning_rate < 1.0 or not 0.0 <= self.beta_1 < 1.0:
            raise ValueError(f"learning_rate={self.learning_rate} (in (0, 1), e.g. 2e-4), "
                             f"beta_1={self.beta_1} (in [0, 1), e.g. 0.5)")
        for name in ("noise_dim", "epochs", "steps_per_epoch", "batch_size", "checkpoint_every", "log_every",
                     "n_generated", "kid_subset_size", "kid_subsets", "diversity_pairs", "classifier_seeds",
                     "classifier_epochs", "r1_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: must be at least 1")
        if not 0.0 <= self.augment_p <= 1.0:
            raise ValueError(f"augment_p={self.augment_p}: a probability in [0, 1]")
        if not 0.0 <= self.ada_target < 1.0 or self.kid_every < 0 or self.kid_images < 2:
            raise ValueError(f"ada_target={self.ada_target} (0 = off, else an accuracy in (0, 1), e.g. 0.8), "
                             f"kid_every={self.kid_every} (0 = off), kid_images={self.kid_images} (at least 2)")
        if self.r1_gamma < 0:
            raise ValueError(f"r1_gamma={self.r1_gamma}: use 0 (off) or a positive weight, e.g. 1")
        if not 0.5 < self.real_label <= 1.0 or (self.loss != "bce" and self.real_label != 1.0):
            raise ValueError(f"real_label={self.real_label}: D's BCE target for real images, in (0.5, 1] "
                             f"(1 = the report's, 0.9 = one-sided label smoothing); loss={self.loss!r} has no target")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay={self.ema_decay}: use 0 (off) or a decay in (0, 1), e.g. 0.999")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision={self.precision!r}; choose one of {PRECISIONS}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy={self.strategy!r}; choose one of {STRATEGIES}")
        if self.logical_devices < 0 or self.logical_devices == 1:
            raise ValueError(f"logical_devices={self.logical_devices}: 0 (the CPU as one device) or at least 2")
        if (self.logical_devices or self.devices) and self.strategy not in ("mirrored", "multiworker"):
            raise ValueError(f"logical_devices={self.logical_devices}, devices={self.devices!r}: for "
                             f"strategy='mirrored' (or 'multiworker'), not {self.strategy!r}")
        # known here for mirrored; gan_lib.distribute checks every strategy's count once it is made
        replicas = len(self.devices.split(",")) if self.devices else self.logical_devices
        if self.strategy == "mirrored" and replicas and self.batch_size % replicas:
            raise ValueError(f"batch_size={self.batch_size} must divide by the {replicas} replicas: each takes an "
                             f"equal share of the global batch")
        for name in ("xla", "speed_layers"):
            if getattr(self, name) not in SWITCHES:
                raise ValueError(f"{name}={getattr(self, name)!r}; choose one of {SWITCHES}")
        if self.feature_extractor not in FEATURE_EXTRACTORS:
            raise ValueError(f"feature_extractor={self.feature_extractor!r}; choose one of {FEATURE_EXTRACTORS}")
        if not 0.0 < self.near_copy_ssim <= 1.0 or self.synthetic_per_real < 0:
            raise ValueError(f"near_copy_ssim={self.near_copy_ssim} (in (0, 1]), "
                             f"synthetic_per_real={self.synthetic_per_real} (at least 0)")
        for name in ("run_name", "dataset"):
            value = getattr(self, name)
            if value in (".", "..") or "/" in value or "\\" in value or (name == "run_name" and not value):
                raise ValueError(f"{name}={value!r}: a plain folder or file name (no '/', not '.' or '..')")
            if len(value.encode()) > MAX_NAME_BYTES:
                raise ValueError(f"{name}={value[:40]!r}...: {len(value.encode())} bytes; at most {MAX_NAME_BYTES} "
                                 "(a file system allows 255 per name)")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def path(self, relative: str | Path) -> Path:
        """Resolve a configured path: absolute stays; relative is under the Colab workspace on Drive
        when a notebook's bootstrap opened one (gan_lib.colab), else under the project root."""
        p = Path(relative).expanduser()
        return p if p.is_absolute() else (workspace_root() or PROJECT_ROOT) / p

    @property
    def raw_dir(self) -> Path:
        return self.path(self.data_root) / "raw"

    @property
    def dataset_name(self) -> str:
        """The name of the dataset these data settings make: it covers every setting that changes
        its contents (a local or Drive folder by a digest of its path, another layout than the
        report's set by a digest of its settings), so none overwrites another."""
        folder = ""
        if self.data_source in ("local", "drive"):
            where = str(self.path(self.data_dir).resolve()) if self.data_source == "local" else self.data_dir.strip("/")
            folder = "-" + hashlib.sha256(where.encode()).hexdigest()[:8]
        subset = f"_n{self.n_images}" if self.n_images else ""
        layout = {"kaggle_dataset": self.kaggle_dataset if self.data_source == "kaggle" else KAGGLE_DATASET,
                  "class_folders": parse_class_map(self.class_map), "test_folder": folder_key(self.test_folder)}
        if layout != {"kaggle_dataset": KAGGLE_DATASET, "class_folders": parse_class_map(""), "test_folder": ""}:
            folder += "-" + hashlib.sha256(json.dumps(layout, sort_keys=True).encode()).hexdigest()[:8]
        return (f"{self.data_source}{folder}_{self.classes}_{self.image_size}px{subset}"
                f"_h{self.holdout:g}_s{self.seed}")

    def dataset_file(self, name: str) -> Path:
        return self.path(self.data_root) / "processed" / f"{name}.npz"

    @property
    def processed_path(self) -> Path:
        """The file of the dataset these data settings make (what 02 writes)."""
        return self.dataset_file(self.dataset_name)

    @property
    def run_dir(self) -> Path:
        return self.path(self.output_root) / self.run_name

    @property
    def lazy_r1(self) -> bool:
        """R1 on some steps only: the step then comes compiled twice, with R1 and without."""
        return self.r1_gamma > 0 and self.r1_every > 1

    def save(self, path: str | Path) -> None:
        write_json(Path(path), self.to_dict())


def folder_key(name: str) -> str:
    """A folder's name as class maps compare it: case and Unicode normal form (NFC, as macOS's NFD
    names are not) do not matter."""
    return unicodedata.normalize("NFC", name).strip().lower()


def parse_class_map(text: str) -> dict[str, str]:
    """Class folder name (lower case) -> "yes" (tumour) or "no", from "yes=a,b;no=c"; "" maps the
    folders yes/ and no/ themselves. A malformed map, a folder under both labels or a label with no
    folder raises, naming the setting."""
    if not text.strip():
        return {"yes": "yes", "no": "no"}
    folders: dict[str, str] = {}
    for part in filter(str.strip, text.split(";")):
        label, equals, names = part.partition("=")
        label = label.strip().lower()
        if not equals or label not in ("yes", "no"):
            raise ValueError(f"class_map={text!r}: write label=folder,folder;label=folder with the labels yes "
                             f"(tumour) and no, e.g. {FOUR_CLASS_MAP!r}")
        for name in filter(None, (folder_key(n) for n in names.split(","))):
            if folders.setdefault(name, label) != label:
                raise ValueError(f"class_map={text!r}: folder {name!r} is under both yes and no")
    missing = sorted({"yes", "no"} - set(folders.values()))
    if missing:
        raise ValueError(f"class_map={text!r}: no folder for {' or '.join(missing)}; both classes need one, "
                         f"e.g. {FOUR_CLASS_MAP!r}")
    return folders


def notebook_parameters(namespace: dict) -> dict:
    """Name -> value of everything the notebook's parameters cell (its last run) and papermill's
    injected cell after it assign, read from IPython's record of the cells as they ran (`In`): a
    notebook hands on every parameter without listing its name a second time. A kernel that keeps
    no record (nbval's) gives the settings and notebook-only names found in the namespace instead,
    the same names for the committed notebooks, whose later cells assign none (tests/test_notebooks.py)."""
    cells = namespace.get("In") or []
    starts = [i for i, source in enumerate(cells) if source.startswith(SETTINGS_CELL_MARK)]
    if not starts:
        known = {f.name for f in dataclasses.fields(GANConfig)} | set(NOTEBOOK_ONLY)
        print("(this kernel keeps no record of the cells it ran: the parameters are the settings' names defined here)")
        return {name: value for name, value in namespace.items() if name in known}
    ran = [cells[starts[-1]]] + [source for source in cells[starts[-1] + 1:]
                                 if source.splitlines()[:1] == [PAPERMILL_CELL_MARK]]
    names = [target.id for source in ran for node in ast.parse(source).body if isinstance(node, ast.Assign)
             for target in node.targets if isinstance(target, ast.Name)]
    return {name: namespace[name] for name in dict.fromkeys(names)}


def _check_type(name: str, value, expected: type):
    """Accept a value of the default's type (an int where a float is expected too)."""
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if type(value) is not expected:
        raise TypeError(f"{name}={value!r} is {type(value).__name__}; expected {expected.__name__}")
    return value
