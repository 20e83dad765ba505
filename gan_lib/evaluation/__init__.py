"""Measures of generated images against real ones (`metrics`, `features`, `descriptors`, the tumour
classifier), and the evaluation of a finished run that writes `metrics.json` (`evaluate`)."""
