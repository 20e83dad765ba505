"""Simulated Colab runtimes: each notebook runs as Colab runs it, on a "virtual machine" of its own.

A runtime is a fresh empty folder (its /content) and a fresh Python environment that sees the
project's installed requirements as Colab's preinstalled image, less gan_lib and papermill (which
Colab lacks, so the bootstrap's pip installs it); a stand-in
`google.colab` (tests/colab_standin) is importable, and its Drive is one temporary "MyDrive"
folder shared by all runtimes, as Google Drive is. The notebook runs under papermill in a new
process, bootstrap cell included: it clones the repository from a local git URL and pip-installs it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from dataclasses import dataclass
from pathlib import Path

from gan_lib.base.colab import ROOT_ENV, WORKSPACE_ENV
from gan_lib.base.paths import PROJECT_ROOT
from gan_lib.base.progress import HEADLESS_ENV

STANDIN = Path(__file__).resolve().parent / "colab_standin"
WORKSPACE = "brain-mri-gan"  # the notebooks' default workspace folder under MyDrive
NOT_IN_IMAGE = ("gan_lib", "__editable__", "__editable___gan_lib", "papermill")  # site-packages entries left out


def snapshot_repository(dest: Path) -> str:
    """A git repository holding this working tree's tracked and new files (what a push would
    publish), and its file:// URL for the bootstrap's `git clone`."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=PROJECT_ROOT,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        source = PROJECT_ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@localhost"]
    for command in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "snapshot"]):
        subprocess.run(git + command, cwd=dest, check=True)
    return f"file://{dest}"


@dataclass
class Runtime:
    """One simulated Colab virtual machine."""
    folder: Path
    python: Path

    @property
    def content(self) -> Path:
        return self.folder / "content"

    def site_packages(self) -> Path:
        return Path(sysconfig.get_path("purelib", vars={"base": str(self.folder / "env")}))


def new_runtime(folder: Path) -> Runtime:
    """A fresh folder and environment: this environment's packages but NOT_IN_IMAGE are visible
    (linked into one folder on its path, the "image"), and Jupyter's python3 kernel is its Python."""
    env_dir = folder / "env"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    runtime = Runtime(folder, env_dir / "bin" / "python")
    image = folder / "image"
    image.mkdir()
    for entry in Path(sysconfig.get_path("purelib")).iterdir():
        if not entry.name.startswith(NOT_IN_IMAGE):
            (image / entry.name).symlink_to(entry)
    runtime.site_packages().joinpath("colab_image.pth").write_text(f"{image}\n")
    kernel = env_dir / "share" / "jupyter" / "kernels" / "python3"
    kernel.mkdir(parents=True)
    (kernel / "kernel.json").write_text(json.dumps({
        "argv": [str(runtime.python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (simulated Colab runtime)", "language": "python"}))
    runtime.content.mkdir(parents=True)
    return runtime


def run_notebook(runtime: Runtime, notebook: str, parameters: dict, my_drive: Path, repo_url: str,
                 secrets: dict | None = None, wait: bool = True):
    """Run notebooks/<notebook> in `runtime` with papermill, as Colab would; returns the finished
    process (or, with wait=False, the running one). Its output notebook is in the runtime's folder."""
    env = {k: v for k, v in os.environ.items() if k not in (WORKSPACE_ENV, HEADLESS_ENV, "PYTHONPATH", "KAGGLEHUB_CACHE")}
    env.update({"PYTHONPATH": str(STANDIN), ROOT_ENV: str(runtime.content), "GAN_REPO_URL": repo_url,
                "JUPYTER_PATH": str(runtime.folder / "env" / "share" / "jupyter"),
                "COLAB_SIM_MYDRIVE": str(my_drive), "COLAB_SIM_SECRETS": json.dumps(secrets or {}),
                "TF_CPP_MIN_LOG_LEVEL": "2"})
    params = runtime.folder / f"{notebook}.params.json"
    params.write_text(json.dumps(parameters))
    command = [sys.executable, "-m", "papermill", str(PROJECT_ROOT / "notebooks" / f"{notebook}.ipynb"),
               str(runtime.folder / f"{notebook}.out.ipynb"), "-f", str(params), "--cwd", str(runtime.content),
               "-k", "python3", "--no-progress-bar"]
    process = subprocess.Popen(command, env=env, cwd=runtime.content, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    if not wait:
        return process
    process.output = process.communicate()[0]
    return process


def outputs_text(executed: Path) -> str:
    """Everything the notebook's cells printed (streams, results and error tracebacks)."""
    parts = []
    for cell in json.loads(executed.read_text())["cells"]:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", "") if isinstance(out.get("text"), str) else "".join(out.get("text", [])))
            parts.append("".join(out.get("data", {}).get("text/plain", "")))
            parts.append("\n".join(out.get("traceback", [])))
    return "\n".join(parts)


def kill_tree(pid: int) -> None:
    """SIGKILL a process and every descendant (papermill, its kernel, the kernels it started), as a
    Colab runtime that disconnects."""
    import psutil

    try:
        parent = psutil.Process(pid)
        family = [*parent.children(recursive=True), parent]
    except psutil.NoSuchProcess:
        return
    for process in family:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass

