"""A dataset to a trained run: the loss terms (`losses`), augmentation and its ADA controller
(`augment`), the moving average of G (`ema`), D's and G's updates (`updates`), the compiled step
that composes them (`step`), how this machine computes it (`engine`, `engine_choice`), on which
replicas (`strategies`), the health log (`monitor`) and the loop (`loop`)."""
