"""A dataset to a trained run: the losses and augmentation, the compiled step (`step`), how this
machine computes it (`engine`, `engine_choice`), on which replicas (`strategies`), the health log
(`monitor`) and the loop (`loop`)."""
