"""Run the numbered notebooks headless with papermill (what `make data`, `make demo` and CI use).

    python -m gan_lib.run_notebooks 01_download 02_preprocess --out outputs/notebooks \
        [--preset report] [--params-file params/ci.yaml] [--prepare-only] [DATA_SOURCE=phantom IMAGE_SIZE=64 ...]

A preset (gan_lib.presets) sets the training notebook's model and training settings first; a params
file, then NAME=VALUE pairs, override it. NAME=VALUE pairs are notebook parameters in upper case (as
make passes them); each is converted to the type of that parameter's default in the notebook, and a
name no notebook has is an error.
With --prepare-only the parameters are injected but nothing runs: nbval then executes those copies.
"""

from __future__ import annotations

import argparse
import ast
import logging
import os
import sys
from pathlib import Path

import papermill as pm
import yaml

from .config import HEADLESS_ENV, PROJECT_ROOT
from .presets import PRESETS

NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"


def notebook_path(name: str) -> Path:
    """`01_download`, `01_download.ipynb` or a path, to the notebook file."""
    path = Path(name)
    if path.suffix != ".ipynb":
        path = path.with_suffix(".ipynb")
    return path if path.exists() else NOTEBOOK_DIR / path.name


def notebook_parameters(path: Path) -> dict[str, str]:
    """Parameter name -> type name of its default literal, from the notebook's `parameters` cell."""
    return {name: type(ast.literal_eval(info["default"])).__name__
            for name, info in pm.inspect_notebook(str(path)).items()}


def convert(name: str, text: str, type_name: str):
    """A command-line string to the parameter's type; an error names the parameter."""
    try:
        if type_name == "int":
            return int(text)
        if type_name == "float":
            return float(text)
        if type_name == "bool":
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(text)
            return text.lower() in ("true", "1", "yes")
    except ValueError:
        raise SystemExit(f"{name.upper()}={text!r}: expected {type_name}") from None
    return text


def resolve_parameters(paths: list[Path], assignments: list[str], params_file: str | None,
                       preset: str | None = None) -> list[dict]:
    """Per notebook, the parameters to inject: the preset's, the params file's, then NAME=VALUE pairs."""
    declared = [notebook_parameters(p) for p in paths]
    known = set().union(*declared)
    from_file = yaml.safe_load(Path(params_file).read_text()) if params_file else {}
    overrides = {**(PRESETS[preset] if preset else {}), **(from_file or {})}
    for item in assignments:
        name, sep, text = item.partition("=")
        key = name.lower()
        if not sep or key not in known:
            raise SystemExit(f"Unknown notebook parameter {name!r}; these notebooks take: "
                             f"{', '.join(sorted(k.upper() for k in known))}")
        type_name = next(d[key] for d in declared if key in d)
        overrides[key] = convert(key, text, type_name)
    return [{k: v for k, v in overrides.items() if k in d} for d in declared]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("items", nargs="+", help="notebook names, then NAME=VALUE parameters")
    parser.add_argument("--out", default="outputs/notebooks", help="folder for the executed copies")
    parser.add_argument("--preset", choices=sorted(PRESETS), help="model and training settings by name (gan_lib.presets)")
    parser.add_argument("--params-file", help="YAML of parameters shared by all notebooks (e.g. params/ci.yaml)")
    parser.add_argument("--prepare-only", action="store_true", help="inject parameters, do not execute")
    args = parser.parse_intermixed_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # papermill logs the cells' output
    os.environ[HEADLESS_ENV] = "1"  # kernels inherit it: text progress bars in the log
    names = [i for i in args.items if "=" not in i]
    assignments = [i for i in args.items if "=" in i]
    paths = [notebook_path(n) for n in names]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise SystemExit(f"No such notebook: {missing}")
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    for path, params in zip(paths, resolve_parameters(paths, assignments, args.params_file, args.preset)):
        target = out_dir / path.name
        print(f"== {path.name} -> {target}  {params}", flush=True)
        try:
            pm.execute_notebook(str(path), str(target), parameters=params, cwd=str(path.parent),
                                prepare_only=args.prepare_only, log_output=not args.prepare_only,
                                progress_bar=False, kernel_name="python3")
        except pm.PapermillExecutionError as err:
            print(f"\n{path.name} stopped: {err.ename}: {err.evalue}\n(the executed copy, with the "
                  f"traceback, is {target})", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
