"""The committed notebooks: clean, parameterised with the config's vocabulary, and runnable by make."""

from __future__ import annotations

import ast
import json
import subprocess
import sys

import papermill as pm
import pytest

from gan_lib.config import GANConfig
from gan_lib.presets import DEFAULT_PRESET, PRESETS
from gan_lib.run_notebooks import COLAB_ONLY, NOTEBOOK_DIR, filtered_stderr, resolve_parameters

NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def code_cells(path) -> list[dict]:
    return [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


# 00_colab's own parameters: which preset, and any further notebook parameter by name.
PIPELINE_ONLY = {"preset": DEFAULT_PRESET, "other_parameters": {}}


def test_there_are_numbered_notebooks():
    assert [p.name[:3] for p in NOTEBOOKS][:3] == ["00_", "01_", "02_"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs_and_parameters_come_first(path):
    code = code_cells(path)
    assert all(not c["outputs"] and c["execution_count"] is None for c in code)
    assert "parameters" in code[0]["metadata"].get("tags", []), "the first code cell is the parameters cell"
    assert sum("parameters" in c["metadata"].get("tags", []) for c in code) == 1


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_parameters_are_config_fields_with_the_config_defaults(path):
    defaults = {**GANConfig().to_dict(), "workspace": "brain-mri-gan"}
    if path.name == "00_colab.ipynb":
        defaults.update(PIPELINE_ONLY)
    assert COLAB_ONLY == {"workspace"}
    for name, info in pm.inspect_notebook(str(path)).items():
        assert name in defaults, f"{path.name}: parameter {name} is not a GANConfig field"
        assert ast.literal_eval(info["default"]) == defaults[name], f"{path.name}: {name} default differs from GANConfig"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_papermill_sees_every_assignment_of_the_parameters_cell(path):
    """papermill skips a line it cannot parse (an "=" in its comment, say), and make could then not
    set that parameter."""
    code = code_cells(path)
    assigned = {node.targets[0].id for node in ast.parse("".join(code[0]["source"])).body}
    assert set(pm.inspect_notebook(str(path))) == assigned


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_parameter_is_used_after_the_parameters_cell(path):
    """A parameter the later cells never read would be accepted from make and silently ignored."""
    code = code_cells(path)
    python = ["".join(line for line in c["source"] if not line.lstrip().startswith(("%", "!"))) for c in code[1:]]
    read = {node.id for source in python for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Name)}
    assert set(pm.inspect_notebook(str(path))) - read == set()


def test_the_defaults_are_the_default_preset():
    defaults = GANConfig().to_dict()
    assert {k: defaults[k] for k in PRESETS[DEFAULT_PRESET]} == PRESETS[DEFAULT_PRESET]


def test_make_style_parameters_are_typed_per_notebook():
    per_notebook = resolve_parameters(NOTEBOOKS[1:3], ["DATA_SOURCE=phantom", "IMAGE_SIZE=64", "HOLDOUT=0"], None)
    assert per_notebook[0] == {"data_source": "phantom"}
    assert per_notebook[1] == {"data_source": "phantom", "image_size": 64, "holdout": 0.0}


def test_unknown_or_mistyped_make_parameter_is_an_error():
    with pytest.raises(SystemExit, match="Unknown notebook parameter 'EPOCS'"):
        resolve_parameters(NOTEBOOKS[1:3], ["EPOCS=3"], None)
    with pytest.raises(SystemExit, match="IMAGE_SIZE='big': expected int"):
        resolve_parameters(NOTEBOOKS[1:3], ["IMAGE_SIZE=big"], None)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_a_preset_sets_the_training_notebooks_settings_and_make_parameters_override_it(preset):
    train_notebook = NOTEBOOK_DIR / "04_train.ipynb"
    (params,) = resolve_parameters([train_notebook], ["LEARNING_RATE=0.001"], None, preset)
    assert params == {**PRESETS[preset], "learning_rate": 0.001}, "every preset setting is a notebook parameter"
    (data_params,) = resolve_parameters([NOTEBOOKS[1]], [], None, preset)
    assert data_params == {}, "notebooks without those parameters get none of them"


def test_make_drops_tensorflow_and_kernel_start_up_lines_and_passes_everything_else(capfd):
    noise = ["I0000 00:00:1795831906.961607   11259 port.cc:153] oneDNN custom operations are on.",
             "W0000 00:00:1795831906.9   11259 device_compiler.h:208] Compiled cluster using XLA!",
             "E0000 00:00:1795832021.234297   11401 cuda_platform.cc:52] failed call to cuInit: INTERNAL",
             "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
             "[IPKernelApp] WARNING | Kernel is running over TCP without encryption."]
    kept = ["E0000 00:00:1795832021.234297   11401 gpu_device.cc:99] Out of memory", "Traceback (most recent call last):",
            "WARNING: step 500: generated diversity is 40% of the real set's"]
    with filtered_stderr():  # a child process writes to the inherited stderr, as a kernel does
        subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write(sys.argv[1])", "\n".join(noise + kept) + "\n"])
    assert capfd.readouterr().err.splitlines() == kept
