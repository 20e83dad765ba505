"""A notebook's parameters: what its `parameters` cell (and papermill's injected cell after it)
assigned, read back so that every notebook hands every parameter on without listing its names a
second time, and the config they make."""

from __future__ import annotations

import ast
import dataclasses

from .config import GANConfig

# Every notebook's parameters cell starts with this line; papermill's injected cell with the second.
SETTINGS_CELL_MARK = "# Settings"
PAPERMILL_CELL_MARK = "# Parameters"
# Parameters read by the Colab bootstrap and by 00_colab, not settings: name -> its description.
NOTEBOOK_ONLY = {"workspace": "Colab only: the folder under MyDrive holding data, runs and caches",
                 "other_parameters": "any other notebook parameter by name, e.g. {'checkpoint_every': 250}"}


def config_from_notebook(namespace: dict) -> GANConfig:
    """The config of a notebook's parameters cell, as it ran (`notebook_parameters`)."""
    settings = notebook_parameters(namespace)
    return GANConfig.from_overrides(**{k: v for k, v in settings.items() if k not in NOTEBOOK_ONLY})


def notebook_parameters(namespace: dict) -> dict:
    """Name -> value of everything the notebook's parameters cell (its last run) and papermill's
    injected cell after it assign, read from IPython's record of the cells as they ran (`In`): a
    notebook hands on every parameter without listing its name a second time. A kernel that keeps
    no record (nbval's) gives the settings and notebook-only names found in the namespace instead,
    the same names for the committed notebooks, whose later cells assign none (tests/test_notebooks.py)."""
    cells = namespace.get("In") or []
    starts = [i for i, source in enumerate(cells) if source.startswith(SETTINGS_CELL_MARK)]
    if not starts:
        known = {f.name for f in dataclasses.fields(GANConfig)} | set(NOTEBOOK_ONLY)
        print("(this kernel keeps no record of the cells it ran: the parameters are the settings' names defined here)")
        return {name: value for name, value in namespace.items() if name in known}
    ran = [cells[starts[-1]]] + [source for source in cells[starts[-1] + 1:]
                                 if source.splitlines()[:1] == [PAPERMILL_CELL_MARK]]
    names = [target.id for source in ran for node in ast.parse(source).body if isinstance(node, ast.Assign)
             for target in node.targets if isinstance(target, ast.Name)]
    return {name: namespace[name] for name in dict.fromkeys(names)}
