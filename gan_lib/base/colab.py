"""Colab: one workspace folder on Google Drive that every notebook's runtime shares.

Each Colab notebook runs on its own virtual machine and only Drive is shared, so the bootstrap cell
of every notebook calls `open_workspace`: it mounts Drive (once per runtime), and points the
relative `data_root` and `output_root` (so also the weights cache under `data_root/weights`) and
kagglehub's cache at `MyDrive/<workspace>`. Off Colab nothing here runs and paths stay relative to
the repository. This module imports no TensorFlow: the bootstrap runs it before anything else.
"""

from __future__ import annotations

import os
from pathlib import Path

# Where this repository is published: the bootstrap cell clones it and the README's badges open
# its notebooks (`python -m gan_lib.scripts.notebook_cells` writes both from here).
REPO_SLUG = "YOUR-ORG/brain-mri-gan"
REPO_URL = f"https://github.com/{REPO_SLUG}.git"
BRANCH = "main"
WORKSPACE_ENV = "GAN_WORKSPACE"  # set by open_workspace; relative paths in GANConfig resolve under it
# A Colab VM keeps its files under /content. The simulated-Colab tests give each "runtime" its own.
ROOT_ENV = "GAN_COLAB_ROOT"
KAGGLE_SECRETS = (("KAGGLE_API_TOKEN",), ("KAGGLE_USERNAME", "KAGGLE_KEY"))


def colab_root() -> Path:
    return Path(os.environ.get(ROOT_ENV, "/content"))


def drive_mount() -> Path:
    return colab_root() / "drive"


def workspace_root() -> Path | None:
    """The workspace folder opened in this process (or its parent notebook), else None."""
    value = os.environ.get(WORKSPACE_ENV)
    return Path(value) if value else None


def mount_drive() -> Path:
    """MyDrive, mounted unless it already is (a kernel started by 00_colab finds it mounted: it
    could not answer Drive's sign-in prompt itself)."""
    my_drive = drive_mount() / "MyDrive"
    if not my_drive.is_dir():
        from google.colab import drive  # only on Colab

        drive.mount(str(drive_mount()))
    return my_drive


def open_workspace(workspace: str) -> Path:
    """Mount Drive, make `MyDrive/<workspace>` (or an absolute path) the root of every relative
    data and output path, and keep kagglehub's cache there. Returns the folder."""
    if not workspace:
        raise ValueError("workspace is empty: name a folder under MyDrive, e.g. 'brain-mri-gan'")
    my_drive = mount_drive()
    root = Path(workspace) if Path(workspace).is_absolute() else my_drive / workspace
    already_open = os.environ.get(WORKSPACE_ENV) == str(root)
    root.mkdir(parents=True, exist_ok=True)
    os.environ[WORKSPACE_ENV] = str(root)
    os.environ.setdefault("KAGGLEHUB_CACHE", str(root / "kagglehub"))
    if not already_open:
        found = kaggle_credentials_from_secrets()
        print(f"Workspace on Google Drive: {root} (data, runs, executed notebooks, caches)."
              + (f" Kaggle credentials: from Colab secrets {'/'.join(found)}." if found else ""))
    return root


def kaggle_credentials_from_secrets() -> tuple[str, ...]:
    """Copy Kaggle credentials from Colab secrets into this process's environment, where kagglehub
    reads them; returns the secret names used (never their values), or () if there are none."""
    if any(all(os.environ.get(n) for n in names) for names in KAGGLE_SECRETS):
        return ()
    from google.colab import userdata  # only on Colab

    for names in KAGGLE_SECRETS:
        try:
            values = [userdata.get(name) for name in names]
        except Exception:  # noqa: BLE001 - missing secret, or notebook access not granted
            continue
        if all(values):
            os.environ.update(zip(names, (v.strip() for v in values)))
            return names
    return ()


def badge(notebook: str) -> str:
    """Markdown for an "Open in Colab" badge of one notebook of this repository."""
    url = f"https://colab.research.google.com/github/{REPO_SLUG}/blob/{BRANCH}/notebooks/{notebook}"
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})"
