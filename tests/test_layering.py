"""gan_lib's import arrows point one way, along the data path: raw files -> dataset -> models -> run
folder -> measures -> training -> figures. Each package imports only the packages before it, and
inside a package a module imports only the modules of its earlier tiers."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from gan_lib.base.paths import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "gan_lib"
# (package, its modules bottom to top); "" is gan_lib itself. Bottom to top.
LAYERS = [
    ("base", [{"files", "tf_noise", "hardware", "colab", "progress"}, {"paths"}]),  # nothing of the GAN, no TensorFlow
    ("config", [{"choices", "presets"}, {"checks"}, {"settings"}]),  # every setting, and the presets
    ("", [{"parameters"}]),  # a notebook's parameters cell -> a config
    ("records", [{"migrations"}, {"run", "manifest", "evaluation"}]),  # the JSON records, typed; old ones upgraded
    ("data", [{"images", "phantom", "scans", "class_folders"}]),  # one file to one image
    ("data.volumes", [{"readers"}, {"finding"}, {"slices", "phantom"}]),  # one 3-D scan to its slices
    ("data", [{"sources"}, {"prepare"}, {"storage", "streaming"}]),  # a raw folder to a dataset
    ("models", [{"layers"}, {"architectures"}]),
    ("runs", [{"location", "folder", "logs"}, {"generate"}]),  # a run folder once written
    ("evaluation", [{"metrics", "features", "descriptors", "classifier", "summary"}, {"label_fidelity"}, {"utility"},
                    {"evaluate"}]),
    ("training", [{"engine", "losses", "augment", "ema"}, {"strategies", "monitor"}, {"updates"}, {"step"},
                  {"engine_choice"}, {"loop"}]),
    ("plots", [{"images"}, {"training", "evaluation"}]),  # matplotlib figures of all of it
    ("", [{"__main__"}]),
]
SCRIPTS = {p.stem for p in (PACKAGE / "scripts").glob("*.py")} - {"__init__"}
NUMPY_ONLY = ["base.hardware", "base.colab", "base.files", "base.paths", "config.settings", "parameters",
              "data.images", "data.phantom", "data.scans", "data.volumes.readers", "data.volumes.finding", "data.volumes.slices",
              "data.volumes.phantom", "data.sources", "data.class_folders", "data.prepare", "data.storage",
              "runs.logs", "runs.location", "evaluation.descriptors", "records.migrations", "records.run",
              "records.manifest", "records.evaluation"]


def dotted(package: str, module: str) -> str:
    return f"{package}.{module}" if package else module


def module_path(name: str):
    return PACKAGE / (name.replace(".", "/") + ".py")


def imports(name: str) -> set[str]:
    """The gan_lib modules (dotted, under gan_lib) that module `name` imports."""
    here = name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(module_path(name).read_text())):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            base = here[:len(here) - node.level + 1]
        elif (node.module or "").startswith("gan_lib"):
            base = []
        else:
            continue
        module = (node.module or "").removeprefix("gan_lib").lstrip(".") if not node.level else node.module or ""
        parts = base + (module.split(".") if module else [])
        for alias in node.names:  # `from ..data import streaming` names a module; `from .x import f` a name
            candidate = ".".join(parts + [alias.name])
            target = candidate if module_path(candidate).exists() else ".".join(parts)
            # a name from a package's __init__ (`from gan_lib.config import GANConfig`): all its modules
            folder = PACKAGE / target.replace(".", "/")
            found |= ({f"{target}.{p.stem}" for p in folder.glob("*.py") if p.stem != "__init__"}
                      if folder.is_dir() else {target})
    return found


ORDER = [dotted(package, m) for package, tiers in LAYERS for tier in tiers for m in sorted(tier)]


def below(package_index: int, tier_index: int) -> set[str]:
    """Every module of the packages before this one, and of this package's earlier tiers."""
    allowed = {dotted(p, m) for p, tiers in LAYERS[:package_index] for tier in tiers for m in tier}
    package, tiers = LAYERS[package_index]
    return allowed | {dotted(package, m) for tier in tiers[:tier_index] for m in tier}


def test_every_module_has_a_layer():
    modules = {str(p.relative_to(PACKAGE).with_suffix("")).replace("/", ".") for p in PACKAGE.rglob("*.py")
               if p.stem != "__init__" and p.parent.name != "scripts"}
    assert modules == set(ORDER)


def test_no_package_holds_more_than_ten_modules():
    for package in {p for p, _ in LAYERS if p}:
        folder = PACKAGE / package.replace(".", "/")
        assert len([p for p in folder.glob("*.py") if p.stem != "__init__"]) <= 10, package


@pytest.mark.parametrize("name", ORDER)
def test_a_module_imports_only_what_lies_below_it(name):
    package_index, tier_index = next((i, j) for i, (package, tiers) in enumerate(LAYERS)
                                     for j, tier in enumerate(tiers) if name in {dotted(package, m) for m in tier})
    assert imports(name) <= below(package_index, tier_index), f"{name} imports {imports(name) - below(package_index, tier_index)}"


def test_the_library_never_imports_the_scripts():
    for name in ORDER:
        assert not any(m == "scripts" or m.startswith("scripts.") for m in imports(name)), name


def test_the_helpers_import_neither_tensorflow_nor_matplotlib():
    code = (f"import sys; import {', '.join('gan_lib.' + m for m in NUMPY_ONLY)}; "
            "print(sorted(m for m in ('tensorflow', 'keras', 'matplotlib') if m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"
