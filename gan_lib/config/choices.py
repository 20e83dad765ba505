"""The values some settings take, the groups of settings other modules read together, and the
class map's grammar."""

from __future__ import annotations

import re
import unicodedata

DATA_SOURCES = ("kaggle", "drive", "local", "phantom")
CLASS_CHOICES = ("yes", "no", "both", "all")
TWO_CLASSES = ("no", "yes")  # the names of labels 0 and 1 (1 = tumour) in every dataset but classes="all"
# Settings that shape only a class-conditional run's models (classes="both" or "all"): a one-class run trains
# the same whatever they say.
CONDITIONAL_ONLY = ("label_every_block", "mismatched_labels")
# Parameters of the evaluation only: everything else is read back from the run's config.json.
EVALUATION_FIELDS = ("which_generator", "n_generated", "feature_extractor", "kid_subset_size", "kid_subsets", "diversity_pairs",
                     "near_copy_ssim", "classifier_seeds", "classifier_epochs", "synthetic_per_real")
FEATURE_EXTRACTORS = ("auto", "inception", "random_cnn")
# How the training step is computed on this machine, not what it computes (gan_lib.training.engine_choice chooses "auto").
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
SWITCHES = ("auto", "on", "off")  # xla, speed_layers
BEST_BY = ("kid_held_out", "kid")  # the health check's figure that picks generator_best.keras
GENERATOR_FILES = {"final": "generator.keras", "best": "generator_best.keras"}  # which_generator: the file
ENGINE_FIELDS = ("precision", "xla", "speed_layers")
# Where the step runs: one device, or replicas under a tf.distribute strategy (gan_lib.training.strategies).
STRATEGIES = ("default", "mirrored", "multiworker", "tpu")
DISTRIBUTE_FIELDS = ("strategy", "logical_devices", "devices", "worker_timeout_s")
# The settings that make a dataset what it is: its name covers them (with `seed`), and a run
# trains on a dataset's, whatever its own say.
DATASET_FIELDS = ("data_source", "data_dir", "kaggle_dataset", "class_map", "test_folder", "classes", "image_size",
                  "n_images", "holdout", "phantom_layout", "volume_modality", "mask_suffix", "slice_share",
                  "tumour_min_pixels")
# The dataset settings that only change what is made of 3-D volumes (gan_lib.data.volumes).
VOLUME_FIELDS = ("volume_modality", "mask_suffix", "slice_share", "tumour_min_pixels")
PHANTOM_LAYOUTS = ("images", "nifti", "dicom")
# Pinned (owner/name/versions/N) so every run reads the same bytes, and a populated kagglehub cache works offline.
KAGGLE_DATASET = "navoneel/brain-mri-images-for-brain-tumor-detection/versions/1"
KAGGLE_HANDLE = re.compile(r"[\w.-]+/[\w.-]+/versions/\d+")
FOUR_CLASS_MAP = "yes=glioma,meningioma,pituitary;no=notumor"  # Kaggle's 7,000-image four-class set, as two classes
MAX_NAME_BYTES = 200  # run_name, dataset: a folder or file name, with room for what is added to it


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


def class_names(classes: str, class_map: str) -> tuple[str, ...]:
    """The name of each label, by its number. With classes="all" each class folder of the map is a
    label of its own, the no-tumour folders first: the default map's "all" is then no (0) and yes
    (1), the two-class labels. Otherwise no (0) and yes (1)."""
    if classes != "all":
        return TWO_CLASSES
    folders = parse_class_map(class_map)
    return tuple([name for name, label in folders.items() if label == "no"] +
                 [name for name, label in folders.items() if label == "yes"])


def no_tumour_classes(classes: str, class_map: str) -> int:
    """How many labels are no-tumour classes: they come first (`class_names`), so label k shows a
    tumour exactly when k is at least this many."""
    return 1 if classes != "all" else list(parse_class_map(class_map).values()).count("no")
