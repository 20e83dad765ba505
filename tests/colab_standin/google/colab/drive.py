"""`drive.mount(mountpoint)`: binds the shared "MyDrive" folder named by COLAB_SIM_MYDRIVE (a
temporary folder that every simulated runtime sees) at `mountpoint/MyDrive`, as Colab's FUSE mount does."""

import os
from pathlib import Path


def mount(mountpoint: str, force_remount: bool = False, timeout_ms: int = 120000, readonly: bool = False) -> None:
    my_drive = Path(mountpoint) / "MyDrive"
    if my_drive.exists() and not force_remount:
        print(f"Drive already mounted at {mountpoint}; to attempt to forcibly remount, call "
              f"drive.mount(\"{mountpoint}\", force_remount=True).")
        return
    Path(mountpoint).mkdir(parents=True, exist_ok=True)
    my_drive.symlink_to(os.environ["COLAB_SIM_MYDRIVE"], target_is_directory=True)
    print(f"Mounted at {mountpoint}")
