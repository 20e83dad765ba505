"""Colab "Run all", simulated (tests/colab_runtime.py): every notebook in its own fresh runtime, only
"MyDrive" shared; the one-runtime notebook 00_colab, killed mid-training and run again; the
bootstrap cell identical in every notebook. Small settings: params/ci.yaml (phantom data, 32 px)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from colab_runtime import STANDIN, WORKSPACE, kill_tree, new_runtime, outputs_text, run_notebook, snapshot_repository

from gan_lib.base.colab import KAGGLE_SECRETS, ROOT_ENV, WORKSPACE_ENV, open_workspace
from gan_lib.base.paths import PROJECT_ROOT
from gan_lib.config import GANConfig
from gan_lib.data.storage import processed_path
from gan_lib.runs.location import run_path
from gan_lib.scripts import notebook_cells
from gan_lib.scripts.run_notebooks import PIPELINE, notebook_path, resolve_parameters, run_pipeline

pytestmark = pytest.mark.slow  # trains, or starts processes or notebooks: not in `make test-fast`

CI_PARAMS = str(PROJECT_ROOT / "params" / "ci.yaml")


@pytest.fixture(scope="module")
def repo_url(tmp_path_factory) -> str:
    return snapshot_repository(tmp_path_factory.mktemp("published"))


def ci_parameters(notebook: str) -> dict:
    return resolve_parameters([notebook_path(notebook)], [], CI_PARAMS)[0]


def assert_ran(process, runtime, notebook: str) -> str:
    executed = runtime.folder / f"{notebook}.out.ipynb"
    text = outputs_text(executed) if executed.exists() else ""
    assert process.returncode == 0, f"{notebook} failed in its runtime:\n{process.output[-3000:]}\n{text[-3000:]}"
    return text


# The notebooks that read what an earlier one left on Drive, each started in a runtime of its own:
# 03 reads nothing from Drive, and 05 and 06 read the run on Drive in the killed-runtime test below
# (its second runtime runs them, each on a kernel of its own, after a disconnect).
FRESH_RUNTIME_NOTEBOOKS = ("01_download", "02_preprocess", "04_train")


def test_each_notebook_in_its_own_fresh_runtime_finds_what_the_earlier_ones_left_on_drive(tmp_path, repo_url):
    my_drive = tmp_path / "MyDrive"
    my_drive.mkdir()
    for notebook in FRESH_RUNTIME_NOTEBOOKS:
        runtime = new_runtime(tmp_path / notebook)
        text = assert_ran(run_notebook(runtime, notebook, ci_parameters(notebook), my_drive, repo_url), runtime, notebook)
        assert f"Workspace on Google Drive: {runtime.content}/drive/MyDrive/{WORKSPACE}" in text
        clone = runtime.content / "brain-mri-gan"
        assert not (clone / "outputs" / "ci").exists() and not (clone / "data" / "raw").exists(), \
            f"{notebook} wrote into the runtime's disk, which a disconnect wipes"
        installed = sorted(p.name.split("-")[0] for p in runtime.site_packages().glob("*.dist-info"))
        assert installed == ["gan_lib", "papermill"], f"pip installed over the image's packages: {installed}"
    workspace = my_drive / WORKSPACE
    run = workspace / "outputs" / "ci" / "runs" / "ci"
    assert (workspace / "outputs" / "ci" / "data" / "processed" / "phantom_yes_32px_h0.2_s0.npz").exists()
    assert (run / "generator.keras").exists() and json.loads((run / "config.json").read_text())["data"]["synthetic"]


def test_a_notebook_without_its_input_names_the_notebook_to_run_and_the_path(tmp_path, repo_url):
    my_drive = tmp_path / "MyDrive"
    my_drive.mkdir()
    runtime = new_runtime(tmp_path / "train-alone")
    process = run_notebook(runtime, "04_train", ci_parameters("04_train"), my_drive, repo_url)
    text = outputs_text(runtime.folder / "04_train.out.ipynb")
    assert process.returncode != 0
    looked_in = f"No dataset in {runtime.content}/drive/MyDrive/{WORKSPACE}/outputs/ci/data/processed"
    assert looked_in in text and "02_preprocess" in text


def test_a_failed_clone_shows_gits_own_message_and_how_to_point_at_another_copy(tmp_path):
    my_drive = tmp_path / "MyDrive"
    my_drive.mkdir()
    runtime = new_runtime(tmp_path / "no-repo")
    process = run_notebook(runtime, "01_download", ci_parameters("01_download"), my_drive, f"file://{tmp_path}/missing")
    text = outputs_text(runtime.folder / "01_download.out.ipynb")
    assert process.returncode != 0
    assert "git clone --depth 1" in text and "fatal:" in text and "GAN_REPO_URL" in text


def pipeline_parameters(steps_per_epoch: int) -> dict:
    """00_colab's parameters: its own cell's names, the rest of params/ci.yaml through other_parameters."""
    own = resolve_parameters([notebook_path("00_colab")], [], CI_PARAMS)[0]
    others = {k: v for k, v in resolve_parameters([notebook_path(n) for n in PIPELINE], [], CI_PARAMS)[3].items()
              if k not in own}
    evaluation = {k: v for k, v in ci_parameters("06_evaluate").items() if k not in own}
    return {**own, "preset": "report", "steps_per_epoch": steps_per_epoch,
            "other_parameters": {**others, **evaluation, "checkpoint_every": 5, "log_every": 1}}


def history_steps(run: Path) -> list[int]:
    with (run / "history.csv").open() as f:
        return [int(row["step"]) for row in csv.DictReader(f)]


KILLED_RUN_STEPS = 80  # the killed run's schedule: it is killed after its first checkpoints, at step 12 or after


def test_the_one_runtime_notebook_killed_during_training_resumes_from_drive(tmp_path, repo_url):
    my_drive = tmp_path / "MyDrive"
    my_drive.mkdir()
    parameters = pipeline_parameters(steps_per_epoch=KILLED_RUN_STEPS)
    run = my_drive / WORKSPACE / "outputs" / "ci" / "runs" / "ci"
    first = new_runtime(tmp_path / "first")
    process = run_notebook(first, "00_colab", parameters, my_drive, repo_url, wait=False)
    deadline = time.time() + 600
    try:
        while not (run / "checkpoints" / "checkpoint").exists() or len(history_steps(run)) < 12:
            assert process.poll() is None, f"00_colab ended before it was killed:\n{process.stdout.read()[-3000:]}"
            assert time.time() < deadline, "training did not reach its first checkpoints in 10 minutes"
            time.sleep(0.5)
    finally:
        kill_tree(process.pid)
        process.wait()
    killed_at = history_steps(run)[-1]
    assert killed_at < KILLED_RUN_STEPS, "the run finished before the kill: make it longer"

    second = new_runtime(tmp_path / "second")
    text = assert_ran(run_notebook(second, "00_colab", parameters, my_drive, repo_url), second, "00_colab")
    steps = history_steps(run)
    assert "Resuming ci from step" in text
    assert steps == sorted(set(steps)) and steps[-1] == KILLED_RUN_STEPS, "the resumed history repeats or misses steps"
    assert json.loads((run / "metrics.json").read_text())["synthetic_data"] is True
    assert (run / "samples" / "evolution.gif").exists(), "05 made the run's evolution from its grids on Drive"
    assert sorted(p.name for p in (my_drive / WORKSPACE / "outputs" / "notebooks").glob("*.ipynb")) == \
        [f"{n}.ipynb" for n in PIPELINE], "the executed notebooks are kept on Drive"
    assert "generated vs training images" in text, "00_colab ends with the run's metrics table"


def test_the_bootstrap_check_fails_when_one_copy_differs(tmp_path):
    assert notebook_cells.drifted(notebook_cells.notebooks()) == [], "run `python -m gan_lib.scripts.notebook_cells`"
    copies = [Path(shutil.copy(p, tmp_path)) for p in notebook_cells.notebooks()]
    nb = json.loads(copies[2].read_text())
    cell = next(c for c in nb["cells"] if notebook_cells.TAG in c["metadata"].get("tags", []))
    cell["source"][4] = cell["source"][4].replace("brain-mri-gan", "my-fork")
    copies[2].write_text(json.dumps(nb))
    assert notebook_cells.drifted(copies) == [f"{copies[2].name}: its 'colab' cell differs from gan_lib/scripts/notebook_cells.py"]


def test_a_parameter_comment_or_settings_page_edited_by_hand_is_drift(tmp_path):
    """One description per setting: the notebooks' parameter comments and docs/settings.md are copies of it."""
    copies = [Path(shutil.copy(p, tmp_path)) for p in notebook_cells.notebooks()]
    nb = json.loads(copies[4].read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    line = next(i for i, text in enumerate(cell["source"]) if text.startswith("epochs = "))
    cell["source"][line] = "epochs = 10  # the report: 10 epochs\n"
    copies[4].write_text(json.dumps(nb))
    settings = tmp_path / "settings.md"
    settings.write_text(notebook_cells.SETTINGS_DOC.read_text().replace("epochs of training", "epochs"))
    assert notebook_cells.drifted(copies, settings_doc=settings) == [
        "settings.md: not the settings' descriptions in gan_lib/config/settings.py",
        f"{copies[4].name}: its parameters cell's comments differ from the settings' descriptions"]
    nb_text = notebook_cells.described("".join(cell["source"]))
    assert "epochs = 10  # epochs of training (the report: 10)" in nb_text.splitlines()


@pytest.fixture
def standin_colab(tmp_path, monkeypatch):
    """This process as a Colab runtime: the stand-in google.colab importable, its Drive a temporary folder."""
    monkeypatch.syspath_prepend(str(STANDIN))
    for name in (WORKSPACE_ENV, "KAGGLEHUB_CACHE", *(n for names in KAGGLE_SECRETS for n in names)):
        monkeypatch.setenv(name, "")  # so that teardown restores it, whatever open_workspace sets
        monkeypatch.delenv(name)
    monkeypatch.setenv(ROOT_ENV, str(tmp_path / "content"))
    monkeypatch.setenv("COLAB_SIM_MYDRIVE", str(tmp_path / "MyDrive"))
    (tmp_path / "MyDrive").mkdir()
    yield tmp_path / "MyDrive"
    for name in [m for m in sys.modules if m.startswith("google.colab")]:
        del sys.modules[name]


def test_the_workspace_roots_every_relative_path_and_the_kaggle_cache_on_drive(standin_colab, monkeypatch, capsys):
    monkeypatch.setenv("COLAB_SIM_SECRETS", json.dumps({"KAGGLE_USERNAME": "someone", "KAGGLE_KEY": "s3cr3t-key"}))
    root = open_workspace("brain-mri-gan")
    assert root == standin_colab.parent / "content" / "drive" / "MyDrive" / "brain-mri-gan" and root.is_dir()
    cfg = GANConfig.from_overrides(data_source="phantom", image_size=64)
    assert processed_path(cfg) == root / "data" / "processed" / "phantom_yes_64px_h0.2_s0.npz"
    assert run_path(cfg) == root / "outputs" / "runs" / "tumour-gan"
    assert os.environ["KAGGLEHUB_CACHE"] == str(root / "kagglehub")
    assert (os.environ["KAGGLE_USERNAME"], os.environ["KAGGLE_KEY"]) == ("someone", "s3cr3t-key")
    out = capsys.readouterr().out
    assert "KAGGLE_USERNAME/KAGGLE_KEY" in out and "s3cr3t-key" not in out
    open_workspace("brain-mri-gan")  # again, as each notebook of 00_colab does: no second mount or message
    assert capsys.readouterr().out == ""


def test_without_secrets_the_workspace_opens_and_kaggle_stays_anonymous(standin_colab, capsys):
    open_workspace("elsewhere")
    assert "Kaggle credentials" not in capsys.readouterr().out and "KAGGLE_KEY" not in os.environ


def test_make_refuses_the_colab_only_workspace_and_the_pipeline_unknown_names(tmp_path):
    with pytest.raises(SystemExit, match="Colab only"):
        resolve_parameters([notebook_path("01_download")], ["WORKSPACE=x"], None)
    with pytest.raises(ValueError, match="epocs"):
        run_pipeline({"epocs": 1}, tmp_path)


def test_installing_on_colab_keeps_colabs_own_tensorflow(tmp_path, repo_url):
    """Colab ships its own TensorFlow (2.19.0 at the time of writing; here its metadata in front of
    the image's): pip must install gan_lib and what Colab lacks (papermill), not a TensorFlow."""
    runtime = new_runtime(tmp_path / "runtime")
    colab_tf = runtime.site_packages() / "tensorflow-2.19.0.dist-info"
    colab_tf.mkdir()
    (colab_tf / "METADATA").write_text("Metadata-Version: 2.1\nName: tensorflow\nVersion: 2.19.0\n")
    clone = tmp_path / "brain-mri-gan"
    subprocess.run(["git", "clone", "-q", repo_url, str(clone)], check=True)
    report = tmp_path / "report.json"
    subprocess.run([str(runtime.python), "-m", "pip", "install", "-q", "--dry-run", "--report", str(report),
                    "-e", str(clone)], check=True, capture_output=True)
    installs = sorted(item["metadata"]["name"] for item in json.loads(report.read_text())["install"])
    assert installs == ["gan_lib", "papermill"]
