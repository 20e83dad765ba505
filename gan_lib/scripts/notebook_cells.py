"""The Colab bootstrap cell, written once: every notebook carries an identical copy (tagged `colab`).

    python -m gan_lib.scripts.notebook_cells           # write the current cell into every notebook, and the badges
    python -m gan_lib.scripts.notebook_cells --check   # list the notebooks whose copy differs (exit 1)

The test suite runs the check, so a hand-edited copy fails CI. The repository URL comes from
`gan_lib.colab`, like the README's "Open in Colab" badges (between the BADGES markers), which are
written and checked here too.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gan_lib.colab import ROOT_ENV, REPO_URL, WORKSPACE_ENV, badge
from gan_lib.config import PROJECT_ROOT

TAG = "colab"
NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
README = NOTEBOOK_DIR.parent / "README.md"
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
    from gan_lib.colab import open_workspace
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


def drifted(paths: list[Path], readme: Path = README) -> list[str]:
    """Notebooks without exactly one bootstrap cell equal to BOOTSTRAP, and a README whose badges
    are not those of these notebooks, each with the reason."""
    text = readme.read_text()
    problems = [] if readme_with_badges(text, paths) == text else [f"{readme.name}: its Colab badges are out of date"]
    for path in paths:
        cells = _bootstrap_cells(json.loads(path.read_text()))
        if len(cells) != 1:
            problems.append(f"{path.name}: {len(cells)} cells tagged {TAG!r} (expected 1)")
        elif "".join(cells[0]["source"]) != BOOTSTRAP:
            problems.append(f"{path.name}: its {TAG!r} cell differs from gan_lib/scripts/notebook_cells.py")
    return problems


def write(paths: list[Path]) -> None:
    """Replace each notebook's bootstrap cell with the current one (kept unexecuted)."""
    for path in paths:
        nb = json.loads(path.read_text())
        cells = _bootstrap_cells(nb)
        if len(cells) != 1:
            raise SystemExit(f"{path.name}: {len(cells)} cells tagged {TAG!r}; expected 1 to replace")
        cells[0]["source"] = BOOTSTRAP.splitlines(keepends=True)
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    README.write_text(readme_with_badges(README.read_text(), paths))


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
