"""The settings: `GANConfig`, the presets it starts from, and the values settings take. Import them
from here (`from gan_lib.config import GANConfig`); the modules are `settings` (the class),
`presets`, `choices` (allowed values, setting groups, the class map) and `checks`."""

from .choices import (BEST_BY, CLASS_CHOICES, CONDITIONAL_ONLY, DATA_SOURCES, DATASET_FIELDS, DISTRIBUTE_FIELDS,
                      ENGINE_FIELDS, EVALUATION_FIELDS, FEATURE_EXTRACTORS, FOUR_CLASS_MAP, GENERATOR_FILES,
                      KAGGLE_DATASET, KAGGLE_HANDLE, MAX_NAME_BYTES, PHANTOM_LAYOUTS, PRECISIONS, STRATEGIES, SWITCHES,
                      TWO_CLASSES, VOLUME_FIELDS, class_names, folder_key, no_tumour_classes, parse_class_map)
from .presets import DEFAULT_PRESET, PRESET_DEFAULTS, PRESETS, REPORT
from .settings import GANConfig, setting

__all__ = ["BEST_BY", "CLASS_CHOICES", "CONDITIONAL_ONLY", "DATA_SOURCES", "DATASET_FIELDS", "DISTRIBUTE_FIELDS", "ENGINE_FIELDS",
           "EVALUATION_FIELDS", "FEATURE_EXTRACTORS", "FOUR_CLASS_MAP", "GENERATOR_FILES", "KAGGLE_DATASET", "KAGGLE_HANDLE",
           "MAX_NAME_BYTES", "PHANTOM_LAYOUTS", "PRECISIONS", "STRATEGIES", "SWITCHES", "TWO_CLASSES", "VOLUME_FIELDS",
           "class_names", "folder_key", "no_tumour_classes", "parse_class_map", "DEFAULT_PRESET", "PRESET_DEFAULTS", "PRESETS", "REPORT",
           "GANConfig", "setting"]
