"""The committed notebooks: clean, parameterised with the config's vocabulary, and runnable by make."""

from __future__ import annotations

import ast
import json
import subprocess
import sys

import papermill as pm
import pytest

from gan_lib.base.paths import PROJECT_ROOT
from gan_lib.base.tf_noise import REMAPPER_NOTE, filtered_stderr
from gan_lib.config import PRESET_DEFAULTS, PRESETS, GANConfig
from gan_lib.data.storage import processed_path
from gan_lib.parameters import NOTEBOOK_ONLY, PAPERMILL_CELL_MARK, config_from_notebook, notebook_parameters
from gan_lib.scripts.run_notebooks import COLAB_ONLY, NOTEBOOK_DIR, as_typed, keep_folders, resolve_parameters

NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def code_cells(path) -> list[dict]:
    return [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


# 00_colab's own parameter: any further notebook parameter by name.
PIPELINE_ONLY = {"other_parameters": {}}
# A notebook gives these as None: the preset's table is the one place their defaults are written.
FROM_THE_PRESET = {"preset", *PRESET_DEFAULTS}


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
        expected = None if name in FROM_THE_PRESET else defaults[name]
        assert ast.literal_eval(info["default"]) == expected, f"{path.name}: {name} default differs from GANConfig"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_papermill_sees_every_assignment_of_the_parameters_cell(path):
    """papermill skips a line it cannot parse (an "=" in its comment, say), and make could then not
    set that parameter."""
    code = code_cells(path)
    assigned = {node.targets[0].id for node in ast.parse("".join(code[0]["source"])).body}
    assert set(pm.inspect_notebook(str(path))) == assigned


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_notebook_hands_its_whole_parameters_cell_on(path):
    """A parameter the later cells never read would be accepted from make and silently ignored:
    each notebook collects the cell's names (notebook_parameters) instead of listing them again."""
    later = "".join("".join(c["source"]) for c in code_cells(path)[1:])
    assert "config_from_notebook(globals())" in later or "notebook_parameters(globals())" in later
    assert "from_overrides" not in later


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_later_cell_assigns_a_parameter_name(path):
    """So a kernel without a record of its cells (nbval's) finds the same parameters in its namespace."""
    names = set(GANConfig().to_dict()) | set(NOTEBOOK_ONLY)
    later = "".join("".join(c["source"]) + "\n" for c in code_cells(path)[2:])
    assigned = {node.id for node in ast.walk(ast.parse(later)) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)}
    assert not assigned & names


def test_without_a_record_of_the_cells_the_namespace_gives_the_same_parameters():
    namespace = ran(NOTEBOOK_DIR / "04_train.ipynb", {"seed": 7})
    with_record = notebook_parameters(namespace)
    del namespace["In"]
    assert notebook_parameters(namespace) == with_record


def test_every_preset_setting_has_its_default_written_once_in_the_default_preset():
    """GANConfig's field for a setting a preset sets takes its default from PRESET_DEFAULTS, never
    from a literal of its own (the notebooks give None: the test above)."""
    source = (PROJECT_ROOT / "gan_lib" / "config" / "settings.py").read_text()
    (config_class,) = [n for n in ast.parse(source).body if isinstance(n, ast.ClassDef) and n.name == "GANConfig"]
    defaults = {n.target.id: n.value for n in config_class.body if isinstance(n, ast.AnnAssign)}
    preset_settings = set().union(*PRESETS.values())
    assert preset_settings <= set(defaults)
    for name in preset_settings:
        default = defaults[name].args[0] if isinstance(defaults[name], ast.Call) else defaults[name]  # setting(default, doc)
        assert ast.unparse(default) == f"PRESET_DEFAULTS[{name!r}]", f"{name}: its default is written twice"


def ran(path, injected: dict) -> dict:
    """A kernel's namespace after the notebook's parameters cell and papermill's injected cell
    ran, with IPython's record of both in `In`."""
    cells = ["", "".join(code_cells(path)[0]["source"]),
             PAPERMILL_CELL_MARK + "\n" + "".join(f"{k} = {v!r}\n" for k, v in injected.items())]
    namespace = {"In": cells}
    for source in cells:
        exec(source, namespace)
    return namespace


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_a_notebook_hands_on_every_parameter_of_its_cell_and_papermills(path):
    namespace = ran(path, {"seed": 7})
    handed = notebook_parameters(namespace)
    assert set(handed) == set(pm.inspect_notebook(str(path))) | {"seed"}
    assert handed["seed"] == 7
    if path.name != "00_colab.ipynb":
        assert config_from_notebook(namespace).seed == 7


def test_the_training_notebook_applies_its_preset_then_the_settings_given():
    train_notebook = NOTEBOOK_DIR / "04_train.ipynb"
    cfg = config_from_notebook(ran(train_notebook, {"preset": "report", "learning_rate": 1e-3, "epochs": 3}))
    assert (cfg.preset, cfg.learning_rate, cfg.epochs, cfg.r1_gamma) == ("report", 1e-3, 3, PRESETS["report"]["r1_gamma"])
    assert set(cfg.overridden()) == {"learning_rate", "epochs"}
    default = config_from_notebook(ran(train_notebook, {}))
    assert default == GANConfig() and default.overridden() == {}


def test_a_name_in_the_parameters_cell_that_the_config_does_not_know_is_an_error():
    namespace = ran(NOTEBOOK_DIR / "04_train.ipynb", {})
    namespace["In"][1] += "\nlearning_rat = 0.1\n"
    exec("learning_rat = 0.1", namespace)
    with pytest.raises(ValueError, match="Unknown config key.*learning_rat"):
        config_from_notebook(namespace)


def test_make_style_parameters_are_typed_per_notebook():
    per_notebook = resolve_parameters(NOTEBOOKS[1:3], ["DATA_SOURCE=phantom", "IMAGE_SIZE=64", "HOLDOUT=0"], None)
    assert per_notebook[0] == {"data_source": "phantom"}
    assert per_notebook[1] == {"data_source": "phantom", "image_size": 64, "holdout": 0.0}


def test_unknown_or_mistyped_make_parameter_is_an_error():
    with pytest.raises(SystemExit, match="Unknown notebook parameter 'EPOCS'; did you mean EPOCHS\\?"):
        resolve_parameters([NOTEBOOK_DIR / "04_train.ipynb"], ["EPOCS=3"], None)
    with pytest.raises(SystemExit, match="'XYZZY'; these notebooks take: CLASSES, CLASS_MAP, "):
        resolve_parameters(NOTEBOOKS[1:3], ["XYZZY=3"], None)
    with pytest.raises(SystemExit, match="IMAGE_SIZE='big': expected int"):
        resolve_parameters(NOTEBOOKS[1:3], ["IMAGE_SIZE=big"], None)


def test_make_passes_a_preset_and_its_overrides_as_plain_parameters():
    train_notebook = NOTEBOOK_DIR / "04_train.ipynb"
    (params,) = resolve_parameters([train_notebook], ["PRESET=report", "LEARNING_RATE=0.001", "MINIBATCH_STDDEV=true"], None)
    assert params == {"preset": "report", "learning_rate": 0.001, "minibatch_stddev": True}
    data_params, _ = resolve_parameters([NOTEBOOKS[1], train_notebook], [], None, {"preset": "report"})
    assert data_params == {}, "notebooks without those parameters get none of them"


def test_make_drops_tensorflow_and_kernel_start_up_lines_and_passes_everything_else(capfd):
    noise = ["I0000 00:00:1795831906.961607   11259 port.cc:153] oneDNN custom operations are on.",
             "W0000 00:00:1795831906.9   11259 device_compiler.h:208] Compiled cluster using XLA!",
             "E0000 00:00:1795832021.234297   11401 cuda_platform.cc:52] failed call to cuInit: INTERNAL",
             "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
             "[IPKernelApp] WARNING | Kernel is running over TCP without encryption."]
    remapper = ("E0000 00:00:1796370469.227283    2206 meta_optimizer.cc:967] remapper failed: INVALID_ARGUMENT: "
                "Mutation::Apply error: fanout 'gradient_tape/d/leaky_re_lu_11_1/LeakyRelu/LeakyReluGrad_1' exist for "
                "missing node 'd/phase_grad_conv2d_3_1/BiasAdd'.")
    kept = ["E0000 00:00:1795832021.234297   11401 gpu_device.cc:99] Out of memory", "Traceback (most recent call last):",
            "WARNING: step 500: generated diversity is 40% of the real set's"]
    with filtered_stderr():  # a child process writes to the inherited stderr, as a kernel does
        subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write(sys.argv[1])",
                        "\n".join(noise[:2] + [remapper] + noise[2:] + [remapper] + kept) + "\n"])
    assert capfd.readouterr().err.splitlines() == [REMAPPER_NOTE.strip()] + kept, "the remapper's lines: one note"


def test_errors_name_parameters_as_the_user_typed_them_on_the_command_line():
    message = "epochs=0: must be at least 1; image_size=30: use a multiple of 16; not_a_setting=1"
    assert as_typed(message, {"epochs", "image_size"}) == \
        "EPOCHS=0: must be at least 1; IMAGE_SIZE=30: use a multiple of 16; not_a_setting=1"
    with pytest.raises(SystemExit, match="^EPOCHS=0: must be at least 1"):
        keep_folders([NOTEBOOK_DIR / "04_train.ipynb"], [{"epochs": 0}])


def test_each_executed_notebook_is_kept_with_what_it_made(tmp_path):
    """make data and make train no longer share one folder, where a failed run replaced a good one's copy."""
    data, train = ({"data_source": "phantom", "data_root": str(tmp_path / "d"), "image_size": 64},
                   {"run_name": "r1", "output_root": str(tmp_path / "runs")})
    folders = keep_folders(NOTEBOOKS[1:3] + [NOTEBOOK_DIR / "04_train.ipynb"], [data, data, train])
    dataset = processed_path(GANConfig.from_overrides(**data))
    assert folders == [dataset.with_suffix(".notebooks")] * 2 + [tmp_path / "runs" / "r1" / "notebooks"]
