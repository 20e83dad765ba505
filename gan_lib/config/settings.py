"""GANConfig: the one config object that carries a notebook's parameters (or papermill's, or
make's) to the code. Settings only, by concern; where their paths point is `gan_lib.base.paths`,
the dataset they name `gan_lib.data.storage`, the run folder `gan_lib.runs.folder`, and a
notebook's parameters are read by `gan_lib.parameters`.

`GANConfig.from_overrides(preset=..., **params)` applies the preset, then the given values, and
checks them (unknown names and wrong types raise); every stage writes `to_dict()` next to its
output, so a result can be traced back to exactly the settings that made it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .checks import check
from .choices import KAGGLE_DATASET, class_names
from .presets import DEFAULT_PRESET, PRESET_DEFAULTS, PRESETS


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
    class_map: str = setting("", "which class folders hold each label (label, then its folders: the four-class "
            "set's map is in docs/data.md); empty: folders named yes/ (tumour) and no/")
    test_folder: str = setting("",
            "empty: hold out `holdout` of each class; a folder name (e.g. Testing): the dataset's own test split")
    phantom_layout: str = setting("images", "phantom only: images (2-D files in yes/ and no/, as the Kaggle set) | "
            "nifti (BraTS-style volumes with *_seg masks) | dicom (DICOM series, masks beside them)")
    volume_modality: str = setting("",
            "volumes: only files whose name ends in _<this> (BraTS: t1, t1ce, t2, flair); empty: every volume")
    mask_suffix: str = setting("_seg", "volumes: a NIfTI file named <case><this> beside a volume is its tumour mask")
    slice_share: float = setting(0.6,
            "volumes: the middle share of each volume's axial slices that hold head, kept as images; 1: all of them")
    tumour_min_pixels: int = setting(100, "volumes with a mask: a slice whose mask covers this many voxels or more "
            "is tumour, one it misses is not; between, the slice is left out")
    data_root: str = setting("data", "where raw/ and processed/ live; relative: under the repo, or the Colab workspace")
    image_size: int = setting(128, "side of the square training images in pixels (64 works too)")
    classes: str = setting("yes", "yes (tumour, as in the report) | no | both (labels kept) | all (each class "
            "folder its own label, e.g. the four-class set's four)")
    n_images: int = setting(0, "seeded subset of this many images; 0: all (the report once used 10)")
    holdout: float = setting(0.2, "share of each class held out for evaluation, never shown to the GAN")
    seed: int = setting(0, "seeds the phantom, the subset, the hold-out split and training")
    dataset: str = setting("", "training: the dataset to train on, by the name 02 printed; empty: the one 02 last wrote")
    memory_budget_mb: float = setting(2048.0,
            "a training split over this (float32 pixels, MB) is written as shards (02) and streamed (04)")

    # --- model (notebook 03): the preset first, whose table (presets.py) gives the defaults of the settings it sets ---
    preset: str = setting(DEFAULT_PRESET, "a name in PRESETS (docs/training.md): its settings first, then the ones "
            "given; report: the report's GAN as it was")
    arch: str = setting(PRESET_DEFAULTS["arch"],
            "a name in gan_lib.models.architectures.ARCHITECTURES; report: the report's final model")
    noise_dim: int = setting(100, "length of the generator's input noise vector")
    minibatch_stddev: bool = setting(PRESET_DEFAULTS["minibatch_stddev"],
            "D also sees its batch's spread (ProGAN), to catch a collapsing G")
    symmetry_channel: bool = setting(PRESET_DEFAULTS["symmetry_channel"], "D also sees each image minus its "
            "left-right mirror image: its convolutions cannot compare a head's two halves otherwise")
    label_every_block: bool = setting(PRESET_DEFAULTS["label_every_block"], "with classes both or all (else "
            "unused): G gives each class its own gain and bias per channel after every upsampling block, not only "
            "the label's embedding beside the noise")

    # --- training (notebook 04): the report's schedule, and what the default preset adds to its GAN ---
    epochs: int = setting(10, "epochs of training (the report: 10)")
    steps_per_epoch: int = setting(3750, "training steps per epoch (the report: 3750)")
    batch_size: int = setting(4, "images per step, drawn with replacement (the report: 4)")
    learning_rate: float = setting(PRESET_DEFAULTS["learning_rate"], "Adam's learning rate, for both G and D")
    beta_1: float = setting(0.5, "Adam's first-moment decay, as in DCGAN")
    loss: str = setting(PRESET_DEFAULTS["loss"],
            "a name in gan_lib.training.losses.LOSSES (bce: the report's, non-saturating for G)")
    augment: str = setting(PRESET_DEFAULTS["augment"],
            "differentiable augmentation of D's inputs, comma-separated; empty: none (the report)")
    augment_p: float = setting(PRESET_DEFAULTS["augment_p"],
            "probability of each augmentation per image; ADA's start value")
    ada_target: float = setting(PRESET_DEFAULTS["ada_target"],
            ">0: adapt augment_p so D's accuracy on reals stays near this (ADA)")
    r1_gamma: float = setting(PRESET_DEFAULTS["r1_gamma"],
            ">0: R1 penalty (gamma/2)·|grad of D's logit at reals|^2, against oscillation")
    r1_every: int = setting(PRESET_DEFAULTS["r1_every"],
            "R1 on every n-th step only, weighted n times (lazy regularisation, StyleGAN2)")
    reuse_fakes: bool = setting(PRESET_DEFAULTS["reuse_fakes"], "G's update goes through the images D just "
            "trained on (one G forward per step, as PyTorch's DCGAN example); False: fresh noise (the report)")
    mirror: bool = setting(PRESET_DEFAULTS["mirror"], "flip each real image left-right with probability 1/2: "
            "brains are near mirror images and tumours sit on either side, so this doubles the data without "
            "teaching G anything false")
    real_label: float = setting(PRESET_DEFAULTS["real_label"], "D's BCE target for real images; 0.9 is one-sided "
            "label smoothing (Salimans et al. 2016): a D sure of a real image is pulled back from certainty")
    mismatched_labels: bool = setting(PRESET_DEFAULTS["mismatched_labels"],
            "with classes both or all (else unused): D also sees each real image under another class's label and "
            "must call it generated, so G must draw the class it is asked for")
    ema_decay: float = setting(PRESET_DEFAULTS["ema_decay"],
            ">0: samples and the saved G use a moving average of G's weights")

    # --- engine: how and where the step is computed, never what it computes ---
    precision: str = setting("auto",
            "auto | float32 | mixed_float16 | mixed_bfloat16; auto: by the hardware (docs/hardware.md)")
    xla: str = setting("auto", "auto | on | off: compile the step with XLA; auto: on a GPU/TPU, measured on a CPU")
    speed_layers: str = setting("auto",
            "auto | on | off: the CPU speed layers (gan_lib.models.layers); auto: measured on a CPU")
    strategy: str = setting("default",
            "default (one device) | mirrored (every local GPU, or `devices`) | multiworker (TF_CONFIG) | tpu")
    logical_devices: int = setting(0, ">1: split the CPU into this many logical devices (mirrored replicas on a "
            "machine without several accelerators)")
    devices: str = setting("", "mirrored: the devices to use, e.g. GPU:0,GPU:1; empty: every GPU (or the logical CPUs)")
    worker_timeout_s: float = setting(300.0,
            "multiworker: seconds to wait for every worker of TF_CONFIG to join before stopping with the ones missing")

    # --- run folder: where it is, how often it is saved, logged and checked ---
    run_name: str = setting("tumour-gan", "the run folder is <output_root>/<run_name>")
    output_root: str = setting("outputs/runs",
            "relative: under the repository, or the Drive workspace on Colab (gan_lib.base.colab)")
    resume: bool = setting(True, "continue a run folder that exists; False refuses to touch it")
    checkpoint_every: int = setting(500, "steps between checkpoints: the most work a crash can lose")
    log_every: int = setting(10, "steps between history.csv rows (and progress-bar updates)")
    kid_every: int = setting(500, "steps between quality checks in training (health.csv, generator_best.keras); 0: off")
    kid_images: int = setting(200, "generated images per KID/diversity check during training")
    best_by: str = setting("kid_held_out", "which check picks generator_best.keras: kid_held_out (lowest KID against "
            "the held-out real scans) | kid (against the training scans, which a copying G also wins)")
    stop_after_checks: int = setting(0, ">0: stop once generator_best.keras has not improved for this many checks "
            "in a row; 0: train the whole schedule (the report's)")
    best_from_step: int = setting(2000, "checks before this step neither pick generator_best.keras nor count for "
            "stop_after_checks: the first checks' blurred heads can score well against the few held-out scans; a "
            "shorter schedule: its last check only")
    tensorboard: bool = setting(False, "also write losses to <run folder>/tensorboard for TensorBoard")

    # --- evaluation of a finished run (notebooks 05 and 06; `make report RUN=<run_name>`) ---
    which_generator: str = setting("final", "the saved generator evaluated (and drawn from by `make generate`): "
            "final (generator.keras, the last step trained) | best (generator_best.keras, the step best.json names)")
    n_generated: int = setting(500, "generated images the metrics are computed on")
    feature_extractor: str = setting("auto",
            "auto | inception | random_cnn: KID/FID features (auto: InceptionV3 if its weights can be had)")
    kid_subset_size: int = setting(100, "images per KID subset (capped by the smaller set)")
    kid_subsets: int = setting(50, "KID is averaged over this many random subsets; its std is over them")
    diversity_pairs: int = setting(1000, "random image pairs for the mean pairwise MS-SSIM")
    near_copy_ssim: float = setting(0.8, "SSIM to a training image at or above which an image counts as a near-copy")
    classifier_seeds: int = setting(3, "classifier trainings per condition (mean, spread), each on its own draw")
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

    def overridden(self) -> dict:
        """The settings that differ from what the preset and the defaults give: what a run chose."""
        base = {**GANConfig().to_dict(), **PRESETS[self.preset], "preset": self.preset}
        return {name: value for name, value in self.to_dict().items() if base[name] != value}
    def class_names(self) -> tuple[str, ...]:
        """The name of each label of this config's data, by its number (`choices.class_names`)."""
        return class_names(self.classes, self.class_map)

    def validate(self) -> None:
        """Reject values the pipeline cannot honour, with the reason (`checks`)."""
        check(self)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _check_type(name: str, value, expected: type):
    """Accept a value of the default's type (an int where a float is expected too)."""
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if type(value) is not expected:
        raise TypeError(f"{name}={value!r} is {type(value).__name__}; expected {expected.__name__}")
    return value
