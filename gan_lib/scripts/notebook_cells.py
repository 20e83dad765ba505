"""What the notebooks and docs repeat, written from one source each (`make notebook-cells`):

- the Colab bootstrap cell: every notebook carries an identical copy (tagged `colab`); the repository
  URL comes from `gan_lib.base.colab`, like the README's "Open in Colab" badges (between the BADGES markers);
- the comment of each line of a notebook's parameters cell, and `docs/settings.md`: both from the
  settings' descriptions in `gan_lib.config` (one description per setting).

    python -m gan_lib.scripts.notebook_cells           # write them all
    python -m gan_lib.scripts.notebook_cells --check   # list what differs (exit 1)

The test suite runs the check, so a hand-edited copy fails CI.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
from pathlib import Path

from gan_lib.base.colab import REPO_URL, ROOT_ENV, WORKSPACE_ENV, badge
from gan_lib.base.paths import PROJECT_ROOT
from gan_lib.config import DEFAULT_PRESET, PRESET_DEFAULTS, GANConfig
from gan_lib.parameters import NOTEBOOK_ONLY

TAG = "colab"
NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
README = NOTEBOOK_DIR.parent / "README.md"
SETTINGS_DOC = PROJECT_ROOT / "docs" / "settings.md"
DESCRIPTIONS = {**{f.name: f.metadata["doc"] for f in dataclasses.fields(GANConfig)}, **NOTEBOOK_ONLY}
# The settings reference's sections: each starts at its first setting, in GANConfig's order.
SECTIONS = (("Data", "data_source"), ("Model", "preset"), ("Training", "epochs"), ("Engine", "precision"),
            ("Run folder", "run_name"), ("Evaluation", "which_generator"))
ASSIGNMENT = re.compile(r"^(?P<name>\w+) = (?P<value>.*?)(?:  # .*)?$")
BADGES = ("<!-- badges: written by python -m gan_lib.scripts.notebook_cells -->\n", "<!-- /badges -->\n")

BOOTSTRAP = f'''\
# Colab only (nothing happens elsewhere): clone this repository, install gan_lib, and keep data, runs and
# caches in the Drive folder `workspace`. Written by `python -m gan_lib.scripts.notebook_cells`: edit it there.
import importlib.util, os, subprocess, sys
if importlib.util.find_spec("google") and importlib.util.find_spec("google.colab"):
    REPO_URL = os.environ.get("GAN_REPO_URL", "{REPO_URL}")
    repo = os.path.join(os.environ.get("{ROOT_ENV}", "/content"), "brain-mri-gan")
    steps = [] if os.path.isdir(repo) else [["git", "clone", "--depth", "1", REPO_URL, repo]]
    if not os.environ.get("{WORKSPACE_ENV}"):  # a notebook started by 00_colab has it installed
        steps.append([sys.executable, "-m", "pip", "install", "-q", "-e", repo])
    for command in steps:
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"{{' '.join(command)}} failed:\\n{{done.stdout}}{{done.stderr}}\\nA copy of the "
                               "repository elsewhere: os.environ['GAN_REPO_URL'] = '<its git URL>', then run again.")
    sys.path.insert(0, repo)
    os.chdir(repo)
    from gan_lib.base.colab import open_workspace
    open_workspace(workspace)
'''


def notebooks(folder: Path = NOTEBOOK_DIR) -> list[Path]:
    return sorted(folder.glob("*.ipynb"))


def badge_table(paths: list[Path]) -> str:
    rows = [f"| `{p.stem}` | {badge(p.name)} |" for p in paths]
    return "\n".join(["| notebook | open |", "|---|---|", *rows]) + "\n"


def readme_with_badges(text: str, paths: list[Path]) -> str:
    """The README with the badge table between the BADGES markers replaced by the current one."""
    start, end = text.index(BADGES[0]) + len(BADGES[0]), text.index(BADGES[1])
    return text[:start] + badge_table(paths) + text[end:]


def _bootstrap_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if TAG in c.get("metadata", {}).get("tags", [])]


def _parameters_cell(nb: dict) -> dict:
    return next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))


def described(source: str) -> str:
    """A parameters cell with each assignment's comment replaced by its setting's description."""
    lines = []
    for line in source.splitlines():
        match = ASSIGNMENT.match(line)
        if match and match["name"] in DESCRIPTIONS:
            line = f"{match['name']} = {match['value']}  # {DESCRIPTIONS[match['name']]}"
        lines.append(line)
    return "\n".join(lines)


def notebooks_taking(paths: list[Path]) -> dict[str, list[str]]:
    """Setting name -> the notebooks (by number) whose parameters cell has it."""
    taking: dict[str, list[str]] = {}
    for path in paths:
        for line in "".join(_parameters_cell(json.loads(path.read_text()))["source"]).splitlines():
            match = ASSIGNMENT.match(line)
            if match:
                taking.setdefault(match["name"], []).append(path.stem[:2])
    return taking


def settings_reference(paths: list[Path]) -> str:
    """docs/settings.md: every setting with its default and description, by section."""
    taking = notebooks_taking(paths)
    defaults = GANConfig().to_dict()
    starts = {first: title for title, first in SECTIONS}
    out = ["# Settings", "",
           "<!-- Written by `make notebook-cells` from the descriptions in gan_lib/config/settings.py: edit them there. -->",
           "", "Every setting of `GANConfig`, the one config object that carries a notebook's parameters (or "
           "papermill's, or make's) to the code. In a notebook, set it in the `parameters` cell; on the make "
           "command line, in upper case (`make train EPOCHS=2 PRESET=report`); in Python, "
           "`GANConfig.from_overrides(epochs=2)`. Every run writes all of them, resolved, to its `config.json`.",
           "", f"*preset* marks a setting that a preset sets: its default is the default preset's "
           f"(`{DEFAULT_PRESET}`), and a notebook's `None` means \"the preset's\" ([training.md](training.md)).", ""]
    for name, default in defaults.items():
        if name in starts:
            out += ["" if out[-1] else None, f"## {starts[name]}", "", "| setting | default | notebooks | what it does |", "|---|---|---|---|"]
        shown = f"`{default!r}`" + (" *preset*" if name in PRESET_DEFAULTS else "")
        doc = DESCRIPTIONS[name].replace("|", "\\|").replace("<", "&lt;")
        out.append(f"| `{name}` | {shown} | {', '.join(taking.get(name, [])) or '-'} | {doc} |")
    out += ["", "## Notebook parameters that are not settings", "", "| parameter | notebooks | what it does |",
            "|---|---|---|"]
    out += [f"| `{name}` | {', '.join(taking.get(name, []))} | {doc} |" for name, doc in NOTEBOOK_ONLY.items()]
    return "\n".join(line for line in out if line is not None) + "\n"


def drifted(paths: list[Path], readme: Path = README, settings_doc: Path = SETTINGS_DOC) -> list[str]:
    """Notebooks without exactly one bootstrap cell equal to BOOTSTRAP or whose parameters cell's
    comments are not the settings' descriptions, a README whose badges are not those of these
    notebooks, and a settings reference not written from the descriptions, each with the reason."""
    text = readme.read_text()
    problems = [] if readme_with_badges(text, paths) == text else [f"{readme.name}: its Colab badges are out of date"]
    if not settings_doc.exists() or settings_doc.read_text() != settings_reference(paths):
        problems.append(f"{settings_doc.name}: not the settings' descriptions in gan_lib/config/settings.py")
    for path in paths:
        nb = json.loads(path.read_text())
        cells = _bootstrap_cells(nb)
        if len(cells) != 1:
            problems.append(f"{path.name}: {len(cells)} cells tagged {TAG!r} (expected 1)")
        elif "".join(cells[0]["source"]) != BOOTSTRAP:
            problems.append(f"{path.name}: its {TAG!r} cell differs from gan_lib/scripts/notebook_cells.py")
        source = "".join(_parameters_cell(nb)["source"])
        if described(source) != source:
            problems.append(f"{path.name}: its parameters cell's comments differ from the settings' descriptions")
    return problems


def write(paths: list[Path]) -> None:
    """Replace each notebook's bootstrap cell with the current one (kept unexecuted), its parameters'
    comments with the descriptions, the README's badges and the settings reference."""
    for path in paths:
        nb = json.loads(path.read_text())
        cells = _bootstrap_cells(nb)
        if len(cells) != 1:
            raise SystemExit(f"{path.name}: {len(cells)} cells tagged {TAG!r}; expected 1 to replace")
        cells[0]["source"] = BOOTSTRAP.splitlines(keepends=True)
        parameters = _parameters_cell(nb)
        parameters["source"] = described("".join(parameters["source"])).splitlines(keepends=True)
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    README.write_text(readme_with_badges(README.read_text(), paths))
    SETTINGS_DOC.parent.mkdir(exist_ok=True)
    SETTINGS_DOC.write_text(settings_reference(paths))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="report drifted copies instead of writing")
    args = parser.parse_args(argv)
    if not args.check:
        write(notebooks())
    problems = drifted(notebooks())
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
