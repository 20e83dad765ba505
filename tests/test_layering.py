"""gan_lib's import arrows point one way: from the scripts and the modules that write results down
to small numpy-only helpers. A module imports only modules of earlier layers here."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from gan_lib.config import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "gan_lib"
# Bottom to top; the data path runs down the list: raw files -> dataset -> run folder -> generated
# images -> metrics -> figures.
LAYERS = [
    {"files", "tf_noise"},  # no gan_lib imports: files written whole; TensorFlow's log lines kept off the terminal
    {"colab", "images", "phantom", "analysis", "hardware"},  # numpy-only helpers; no TensorFlow
    {"config"},  # every setting, and the presets
    {"sources", "scans"},  # raw files: Kaggle, Drive, a local folder, the phantom; one file -> a head image
    {"data"},  # raw files -> dataset
    {"datasets"},  # datasets on disk: stored, named, chosen
    {"layers", "augment", "losses", "metrics", "descriptors", "classifier", "progress", "streaming"},
    {"models", "features", "generate", "run_folder"},
    {"trainer", "monitor"},  # the compiled step; the health log
    {"speed", "distribute"},  # how this machine computes the step (precision, layers, XLA), measured; on which replicas
    {"training", "evaluate"},  # dataset -> run folder; run folder -> metrics.json
    {"plots"},  # matplotlib figures of all of it
    {"__main__"},
]
SCRIPTS = {p.stem for p in (PACKAGE / "scripts").glob("*.py")} - {"__init__"}
NUMPY_ONLY = ["hardware", "images", "config", "data", "datasets", "scans", "descriptors", "analysis", "phantom", "sources",
              "colab"]


def imports(path) -> set[str]:
    """The gan_lib modules a file imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 1 and module:
                found.add(module.split(".")[0])
            elif node.level == 1:
                found.update(alias.name for alias in node.names)
            elif module.startswith("gan_lib."):
                found.add(module.split(".")[1])
    return found


def test_every_module_has_a_layer():
    modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    assert modules == set().union(*LAYERS)


@pytest.mark.parametrize("level", range(len(LAYERS)))
def test_a_module_imports_only_layers_below_it(level):
    below = set().union(*LAYERS[:level])
    for module in LAYERS[level]:
        assert imports(PACKAGE / f"{module}.py") <= below, f"{module} imports {imports(PACKAGE / f'{module}.py') - below}"


def test_the_library_never_imports_the_scripts():
    for path in PACKAGE.glob("*.py"):
        assert "scripts" not in imports(path) and not imports(path) & SCRIPTS, path.name


def test_the_helpers_import_neither_tensorflow_nor_matplotlib():
    code = (f"import sys; import {', '.join('gan_lib.' + m for m in NUMPY_ONLY)}; "
            "print(sorted(m for m in ('tensorflow', 'keras', 'matplotlib') if m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"
