"""A run folder once written: its config, lock, checkpoints and resume checks (`folder`), its logs
read back (`logs`), and images drawn from its generator (`generate`)."""
