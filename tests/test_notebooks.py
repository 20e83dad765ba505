"""The committed notebooks: clean, parameterised with the config's vocabulary, and runnable by make."""

from __future__ import annotations

import ast
import itertools
import json
import shlex
import subprocess
import sys

import papermill as pm
import pytest

from gan_lib.base.paths import PROJECT_ROOT
from gan_lib.base.tf_noise import REMAPPER_NOTE, filtered_stderr
from gan_lib.config import FOUR_CLASS_MAP, PRESET_DEFAULTS, PRESETS, GANConfig
from gan_lib.data.storage import processed_path
from gan_lib.parameters import NOTEBOOK_ONLY, PAPERMILL_CELL_MARK, config_from_notebook, notebook_parameters
from gan_lib.scripts.run_notebooks import (COLAB_ONLY, NOTEBOOK_DIR, PIPELINE, as_typed, keep_folders, notebook_path,
                                           resolve_parameters)

NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def code_cells(path) -> list[dict]:
    return [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


# 00_colab's own parameter: any further notebook parameter by name.
PIPELINE_ONLY = {"other_parameters": {}}
# A notebook gives these as None: the preset's table is the one place their defaults are written.
FROM_THE_PRESET = {"preset", *PRESET_DEFAULTS}
# A valid value other than the default for every notebook parameter; the preset fields' differ from resize-sn's.
OTHER_VALUES = {
    "best_by": "kid", "stop_after_checks": 3, "best_from_step": 500, "which_generator": "best",
    "workspace": "elsewhere", "other_parameters": {"log_every": 2}, "data_source": "local", "data_dir": "some/scans",
    "kaggle_dataset": "owner/other-set/versions/2", "class_map": FOUR_CLASS_MAP, "test_folder": "Testing",
    "phantom_layout": "nifti", "volume_modality": "flair", "mask_suffix": "_mask", "slice_share": 0.8,
    "tumour_min_pixels": 50, "data_root": "other-data", "image_size": 64, "classes": "both", "n_images": 10,
    "holdout": 0.1, "seed": 7,
    "memory_budget_mb": 512.0, "dataset": "some-dataset", "preset": "resize-sn", "arch": "report", "noise_dim": 64,
    "learning_rate": 1e-3, "beta_1": 0.0, "loss": "bce", "augment": "translation", "augment_p": 0.5,
    "ada_target": 0.6, "minibatch_stddev": True, "r1_gamma": 1.0, "r1_every": 4, "reuse_fakes": True, "mirror": True,
    "symmetry_channel": True, "real_label": 0.9, "label_every_block": True, "mismatched_labels": True,
    "ema_decay": 0.99, "epochs": 2, "steps_per_epoch": 12, "batch_size": 8, "run_name": "other-run",
    "output_root": "other/runs", "resume": False, "checkpoint_every": 5, "log_every": 2, "precision": "float32",
    "xla": "off", "speed_layers": "on", "strategy": "mirrored", "logical_devices": 2, "devices": "/cpu:0,/cpu:1",
    "worker_timeout_s": 60.0, "tensorboard": True, "kid_every": 6, "kid_images": 20, "n_generated": 40,
    "feature_extractor": "random_cnn", "kid_subset_size": 20, "kid_subsets": 5, "diversity_pairs": 100,
    "near_copy_ssim": 0.9, "classifier_seeds": 1, "classifier_epochs": 2, "synthetic_per_real": 0.5}


def make_runs(*words: str) -> list[str]:
    """The notebooks `make <words>` hands to run_notebooks, in order (`make -n`: nothing runs)."""
    done = subprocess.run(["make", "-n", "-s", "-C", str(PROJECT_ROOT), *words], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    (command,) = [shlex.split(line) for line in done.stdout.splitlines() if "gan_lib.scripts.run_notebooks" in line]
    given = command[command.index("gan_lib.scripts.run_notebooks") + 1:]
    return list(itertools.takewhile(lambda word: not word.startswith("-"), given))


def test_make_runs_the_numbered_notebooks_in_the_order_each_reads_the_one_before():
    """Each notebook reads what the one numbered before it wrote: the folder holds 00_colab and the
    pipeline 00_colab runs (PIPELINE), and make runs those notebooks, each name found, in that order."""
    assert [p.stem for p in NOTEBOOKS] == ["00_colab", *PIPELINE]
    assert make_runs("demo") == make_runs("nbval-prepare") == list(PIPELINE)
    assert [notebook_path(name) for name in make_runs("demo")] == NOTEBOOKS[1:]
    assert make_runs("data") + make_runs("train") + make_runs("report", "RUN=x") == \
        [name for name in PIPELINE if name != "03_build_models"], "make data: 01+02, train: 04, report: 05+06"


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


def reads_the_parameters(statement: ast.stmt) -> bool:
    """`name = config_from_notebook(globals())` or `name = notebook_parameters(globals())`."""
    return isinstance(statement, ast.Assign) and ast.unparse(statement.value) in (
        "config_from_notebook(globals())", "notebook_parameters(globals())")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_parameter_given_reaches_what_the_notebook_reads(path):
    """A parameter the later cells never read would be accepted from make and silently ignored. Each
    of the cell's parameters is given a value other than its default, the notebook runs up to where it
    reads its parameters, and what it read (one config, made there and nowhere else) holds them all."""
    given = {name: OTHER_VALUES[name] for name in pm.inspect_notebook(str(path))}
    defaults = {name: ast.literal_eval(info["default"]) for name, info in pm.inspect_notebook(str(path)).items()}
    assert all(given[name] != defaults[name] for name in given)
    namespace = ran(path, given)
    statements = [s for cell in code_cells(path)[1:] if "colab" not in cell["metadata"].get("tags", [])
                  for s in ast.parse("".join(cell["source"])).body]
    readings = [i for i, statement in enumerate(statements) if reads_the_parameters(statement)]
    assert len(readings) == 1, "the notebook reads its parameters once: config_from_notebook(globals())"
    reading = readings[0]
    made_elsewhere = [call for statement in statements for call in ast.walk(statement) if isinstance(call, ast.Call)
                      and ast.unparse(call.func).split(".")[-1] in ("GANConfig", "from_overrides")]
    assert not made_elsewhere, "a config built from names listed again would ignore any parameter left out"
    for statement in statements[:reading + 1]:
        exec(compile(ast.Module([statement], []), path.name, "exec"), namespace)
    read = namespace[statements[reading].targets[0].id]
    if isinstance(read, dict):  # 00_colab: everything, for the notebooks it runs
        assert read == given
    else:
        settings = {name: value for name, value in given.items() if name not in NOTEBOOK_ONLY}
        assert {name: getattr(read, name) for name in settings} == settings
        assert read.overridden() == {name: value for name, value in settings.items() if name != "preset"}


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
