"""Run the numbered notebooks headless with papermill (what `make data`, `make demo` and CI use).

    python -m gan_lib.scripts.run_notebooks 01_download 02_preprocess --out outputs/notebooks \
        [--params-file params/ci.yaml] [--prepare-only] [DATA_SOURCE=phantom PRESET=report ...]

A params file, then NAME=VALUE pairs, set the notebooks' parameters. NAME=VALUE pairs are notebook
parameters in upper case (as make passes them); each is converted to its setting's type in
GANConfig, and a name no notebook has is an error. `PRESET=report` is one of them: the notebook
applies the preset, then any of its settings given too.
With --prepare-only the parameters are injected but nothing runs: nbval then executes those copies.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import logging
import os
import re
import sys
from datetime import datetime
from pathlib import Path

import papermill as pm
import yaml

from gan_lib.base.paths import PROJECT_ROOT
from gan_lib.base.progress import HEADLESS_ENV
from gan_lib.config import GANConfig
from gan_lib.data.storage import processed_path
from gan_lib.records.evaluation import EVALUATION_RECORD, read_evaluation
from gan_lib.records.run import RUN_RECORD
from gan_lib.runs.location import lock_holder, run_path

NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
PIPELINE = ("01_download", "02_preprocess", "03_build_models", "04_train", "05_analyze", "06_evaluate")
COLAB_ONLY = {"workspace"}  # read by the bootstrap cell on Colab; off Colab it would do nothing
SETTING_TYPES = {name: type(value).__name__ for name, value in GANConfig().to_dict().items()}
# The kernel keeps C-level output (TensorFlow's) out of the notebooks; it still reaches the terminal.
KERNEL_ARGUMENTS = ["--IPKernelApp.capture_fd_output=False"]


def notebook_path(name: str) -> Path:
    """`01_download`, `01_download.ipynb` or a path, to the notebook file."""
    path = Path(name)
    if path.suffix != ".ipynb":
        path = path.with_suffix(".ipynb")
    return path if path.exists() else NOTEBOOK_DIR / path.name


def parameter_types(path: Path) -> dict[str, str]:
    """Parameter name -> type name, from the notebook's `parameters` cell: its setting's type in
    GANConfig (a cell's None means "the preset's"), else the type of the cell's literal."""
    return {name: SETTING_TYPES.get(name) or type(ast.literal_eval(info["default"])).__name__
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
                       values: dict | None = None) -> list[dict]:
    """Per notebook, the parameters to inject: the params file's, typed `values`, then NAME=VALUE pairs."""
    declared = [parameter_types(p) for p in paths]
    known = set().union(*declared)
    unknown = set(values or {}) - known
    if unknown:
        raise ValueError(f"No notebook of {[p.stem for p in paths]} takes {sorted(unknown)}")
    from_file = yaml.safe_load(Path(params_file).read_text()) if params_file else {}
    overrides = {**(from_file or {}), **(values or {})}
    for item in assignments:
        name, sep, text = item.partition("=")
        key = name.lower()
        if sep and key in COLAB_ONLY:
            raise SystemExit(f"{name}: the workspace applies on Colab only; here set DATA_ROOT and OUTPUT_ROOT.")
        if not sep or key not in known:
            raise SystemExit(unknown_parameter(name, known))
        type_name = next(d[key] for d in declared if key in d)
        overrides[key] = convert(key, text, type_name)
    return [{k: v for k, v in overrides.items() if k in d} for d in declared]


def unknown_parameter(name: str, known: set[str]) -> str:
    """The error for a NAME=VALUE no notebook takes: the closest names, else the whole list."""
    close = difflib.get_close_matches(name.lower(), known, n=3, cutoff=0.6)
    if close:
        return f"Unknown notebook parameter {name!r}; did you mean {' or '.join(c.upper() for c in close)}?"
    return f"Unknown notebook parameter {name!r}; these notebooks take: {', '.join(sorted(k.upper() for k in known))}"


def as_typed(message: str, names: set[str]) -> str:
    """A notebook's error in the form the user typed its parameters on the command line:
    `epochs=0` becomes `EPOCHS=0`."""
    return re.sub(r"\b(" + "|".join(sorted(names, key=len, reverse=True)) + r")=", lambda m: m[1].upper() + "=",
                  message) if names else message


def keep_folders(paths: list[Path], parameters: list[dict]) -> list[Path]:
    """Where each executed notebook is kept when no --out is given, with what it made: 01's and
    02's beside the dataset they write (<dataset>.notebooks/), 04's in its run folder (notebooks/),
    any other in outputs/notebooks/. Each copy's name carries its start time, so a failed run
    never replaces the executed notebook of one before it."""
    given = {k: v for p in parameters for k, v in p.items() if k in SETTING_TYPES}
    try:
        cfg = GANConfig.from_overrides(**given)
    except (TypeError, ValueError) as err:
        raise SystemExit(as_typed(str(err), set(given))) from None
    folders = {"01": processed_path(cfg).with_suffix(".notebooks"), "02": processed_path(cfg).with_suffix(".notebooks"),
               "04": run_path(cfg) / "notebooks"}
    return [folders.get(path.stem[:2], PROJECT_ROOT / "outputs" / "notebooks") for path in paths]


def execute(paths: list[Path], parameters: list[dict], targets: list[Path], prepare_only: bool = False,
            typed: set[str] = frozenset()) -> Path | None:
    """Run the notebooks in order, their cells' printed output relayed here (no per-cell log lines);
    the executed copies go to `targets`. Each is written under a hidden name while it runs and put
    in place when it has finished, so a kill never leaves a partial copy over an earlier whole one;
    one that failed is kept as <name>.failed.ipynb beside it. An error names the parameters in
    `typed` as they were typed (upper case). Returns the copy of the notebook that failed, or None."""
    os.environ[HEADLESS_ENV] = "1"  # kernels inherit it: text progress bars in the log
    for path, params, target in zip(paths, parameters, targets):
        target.parent.mkdir(parents=True, exist_ok=True)
        shown = ", ".join(f"{k.upper() if k in typed else k}={v!r}" for k, v in params.items())
        print(f"\n== {path.stem}{'  (' + shown + ')' if shown else ''}", flush=True)
        running = target.with_name(f".{target.stem}.running.ipynb")
        try:
            pm.execute_notebook(str(path), str(running), parameters=params, cwd=str(path.parent),
                                prepare_only=prepare_only, log_output=False, progress_bar=False,
                                stdout_file=None if prepare_only else sys.stdout,
                                stderr_file=None if prepare_only else sys.stderr, kernel_name="python3",
                                extra_arguments=KERNEL_ARGUMENTS)
        except pm.PapermillExecutionError as err:
            failed = target.with_suffix(".failed.ipynb")
            os.replace(running, failed)
            print(f"\n{path.name} stopped: {err.ename}: {as_typed(err.evalue, typed)}\n(the executed copy, with the "
                  f"traceback, is {failed})", file=sys.stderr)
            return failed
        os.replace(running, target)
    return None


def run_folders(paths: list[Path], parameters: list[dict]) -> list[Path]:
    """The run folders the notebooks that take a run_name worked on, with these parameters."""
    runs = {run_path(GANConfig.from_overrides(**{k: p[k] for k in ("run_name", "output_root") if k in p}))
            for path, p in zip(paths, parameters) if "run_name" in parameter_types(path)}
    return sorted(runs)


def run_pipeline(values: dict, out_dir: Path, names: tuple[str, ...] = PIPELINE) -> Path:
    """The numbered notebooks 01-06 with one set of parameters (each gets those it declares), as
    00_colab runs them in one Colab runtime; raises if one fails. Returns the run folder."""
    paths = [notebook_path(n) for n in names]
    parameters = resolve_parameters(paths, [], None, values)
    failed = execute(paths, parameters, [out_dir / path.name for path in paths])
    if failed:
        raise RuntimeError(f"{failed.stem} failed; the executed copy with the traceback is {failed}")
    (run_dir,) = run_folders(paths, parameters)
    print(f"\nDone. Run folder: {run_dir}\nExecuted notebooks: {out_dir}")
    return run_dir


def report_folder(run_name: str, output_root: str | None) -> Path:
    """Where `make report RUN=...` keeps the executed notebooks: <run folder>/report, for a run
    folder that exists; anything else is refused before a file is written."""
    if not run_name:
        raise SystemExit("usage: make report RUN=<run_name> [OUTPUT_ROOT=...] [N_GENERATED=...]")
    try:
        run_dir = run_path(GANConfig.from_overrides(run_name=run_name, output_root=output_root))
    except ValueError as err:
        raise SystemExit(f"RUN={run_name!r}: {err}") from None
    if not (run_dir / RUN_RECORD).exists():
        raise SystemExit(f"RUN={run_name!r}: no run folder at {run_dir} (train it first, or set OUTPUT_ROOT).")
    holder = lock_holder(run_dir)
    if holder:
        raise SystemExit(f"RUN={run_name!r}: {run_dir} is in use ({holder}); report on it once its training has "
                         "finished.")
    return run_dir / "report"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("items", nargs="+", help="notebook names, then NAME=VALUE parameters")
    parser.add_argument("--out", help="folder for the executed copies; default: each beside what it made "
                        "(01/02: <dataset>.notebooks/, 04: <run folder>/notebooks/, timestamped)")
    parser.add_argument("--params-file", help="YAML of parameters shared by all notebooks (e.g. params/ci.yaml)")
    parser.add_argument("--prepare-only", action="store_true", help="inject parameters, do not execute")
    parser.add_argument("--dry-run", action="store_true", help="print each notebook's parameters, run nothing")
    parser.add_argument("--report", metavar="RUN", help="report on the run folder RUN: the executed copies go into "
                        "<run folder>/report (it must exist)")
    args = parser.parse_intermixed_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    names = [i for i in args.items if "=" not in i]
    assignments = [i for i in args.items if "=" in i]
    paths = [notebook_path(n) for n in names]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise SystemExit(f"No such notebook: {missing}")
    if args.report is not None:
        assignments.append(f"RUN_NAME={args.report}")
    parameters = resolve_parameters(paths, assignments, args.params_file)
    if args.report is not None:
        args.out = str(report_folder(args.report, parameters[0].get("output_root")))
    if args.out:
        targets = [Path(args.out) / path.name for path in paths]
    else:
        started = datetime.now().strftime("%Y%m%d-%H%M%S")
        folders = keep_folders(paths, parameters)
        targets = [folder / f"{path.stem}-{started}.ipynb" for path, folder in zip(paths, folders)]
    if args.dry_run:
        for path, params in zip(paths, parameters):
            print(f"{path.stem}: {json.dumps(params, ensure_ascii=False)}")
        print(f"executed copies would go to {', '.join(sorted({str(t.parent) for t in targets}))}")
        return 0
    typed = {a.partition("=")[0].lower() for a in assignments} | {n for p in parameters for n in p}
    failed = execute(paths, parameters, targets, args.prepare_only, typed)  # the kernels inherit gan_lib.base.tf_noise's filter
    if failed or args.prepare_only:
        return 1 if failed else 0
    print("\nExecuted notebooks:\n" + "\n".join(f"  {t.resolve()}" for t in targets))
    for run_dir in run_folders(paths, parameters):
        print(f"Run folder: {run_dir}")
        evaluated = any(p.stem == "06_evaluate" for p in paths)
        if evaluated and (run_dir / EVALUATION_RECORD).exists():  # the notebook shows it rendered, the terminal as text
            from gan_lib.evaluation.summary import summary_table

            print("\n" + summary_table(read_evaluation(run_dir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
