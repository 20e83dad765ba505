"""`make results`: the index of the experiment records and the README's headline table, both
written from the records' own files, so a number in the README is the number in its record.

    python -m gan_lib.scripts.results           # write results/README.md and the README's table
    python -m gan_lib.scripts.results --check   # list what differs from what the records give (exit 1)

A record is a folder `results/<YYYY-MM-DD>-<slug>/` with `README.md` (question, setup, verdict),
`record.json` (the fields of RECORD_FIELDS) and the JSON and figures its program wrote
(docs/development.md: "Adding an experiment").
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gan_lib.base.files import write_json
from gan_lib.base.hardware import cpu_facts
from gan_lib.base.paths import PROJECT_ROOT

RESULTS = PROJECT_ROOT / "results"
README = PROJECT_ROOT / "README.md"
RECORD_FIELDS = {"title", "date", "kind", "question", "verdict", "status", "superseded_by", "command", "commit",
                 "machine", "results", "figures", "source"}
HEADLINE = ("<!-- headline: written by `make results` from the records' JSON -->\n", "<!-- /headline -->\n")


@dataclass(frozen=True)
class Row:
    """One line of the headline table: the rows of its records' quality.json whose names match."""
    generator: str
    data: str
    records: tuple[str, ...]  # the record folders' slugs (their names without the date)
    rows: str  # quality.json row names start with this ...
    ending: str = ""  # ... and end with this


HEADLINE_ROWS = (
    Row("the report's GAN (`PRESET=report`)", "tumour slices", ("report-vs-default-64px",), "report_s"),
    Row("default preset", "tumour slices", ("report-vs-default-64px",), "default_s"),
    Row("the report's GAN, **128 px**, its whole 37,500-step schedule", "tumour slices",
        ("report-vs-default-128px-stages-37500",), "report_s", "_37500"),
    Row("default preset", "both classes", ("conditional-12k",), "seed", "_12000"),
    Row("default preset, evaluated with the spread floor", "both classes", ("conditional-12k-seed0",), "default_both_s"),
    Row("default preset, with label fidelity", "both classes", ("label-fidelity-64px",), "before_s"),
    Row("default preset, **128 px**, 24,000 of the report's 37,500 steps", "both classes",
        ("default-128px-stages", "default-128px-stages-seed1-37500"), "default_s", "_24000"),
    Row("default preset, **128 px**, the report's whole schedule", "both classes",
        ("default-128px-stages-seed1-37500",), "default_s", "_37500"),
)
LONGEST_RUNS = "conditional-24k"  # its results.json: TSTR over draws per seed and step


def records(root: Path = RESULTS) -> dict[str, dict]:
    """Folder name -> its record.json, newest first; a record without the fields, or whose verdict
    is still to be written, is an error that names it."""
    found = {}
    for folder in sorted((p for p in root.iterdir() if (p / "record.json").exists()), reverse=True):
        record = json.loads((folder / "record.json").read_text())
        missing = RECORD_FIELDS - set(record)
        if missing:
            raise ValueError(f"{folder / 'record.json'}: missing {sorted(missing)}")
        if not record["verdict"].strip() or not record["question"].strip():
            raise ValueError(f"{folder / 'record.json'}: write its question and verdict (and its README's)")
        found[folder.name] = record
    return found


def machine() -> str:
    """This machine as a record names it: the CPU's model, logical cores and speed features."""
    cpu = cpu_facts()
    return f"{cpu['model']}, {cpu['cores']} logical cores, features {' '.join(cpu['features']) or 'none known'}"


def commit() -> str:
    """The checked-out commit, marked `+changes` when the working tree differs from it."""
    def git(*args):
        return subprocess.run(["git", "-C", str(PROJECT_ROOT), *args], capture_output=True, text=True).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown (not a git checkout)"
    return head + ("+changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def invocation() -> str:
    """This program's command line, as `python -m <module> ...` for a module of this project."""
    script = Path(sys.argv[0]).resolve()
    if script.is_relative_to(PROJECT_ROOT) and script.suffix == ".py":
        return shlex.join(["python", "-m", ".".join(script.relative_to(PROJECT_ROOT).with_suffix("").parts),
                           *sys.argv[1:]])
    return shlex.join(sys.argv)


def add_record_option(parser: argparse.ArgumentParser, what: str) -> None:
    """The programs' `--record SLUG` option: their outputs (`what`) as a new record."""
    parser.add_argument("--record", metavar="SLUG", help=f"write {what} as a new record, results/<today>-SLUG/, with "
                        "the command, commit and machine (then write its question and verdict)")


def start_record(slug: str, kind: str, title: str, root: Path = RESULTS) -> Path:
    """A new record folder `<today>-<slug>` for a program's outputs (refused if it exists), with a
    record.json holding the command, commit and machine, and a README to finish: the question and
    the verdict are the researcher's to write (`make results` refuses a record without them)."""
    folder = root / f"{datetime.date.today().isoformat()}-{slug}"
    folder.mkdir(parents=True)
    record = {"title": title, "date": folder.name[:10], "kind": kind, "question": "", "verdict": "",
              "status": "current", "superseded_by": None, "command": invocation(),
              "commit": commit(), "machine": machine(), "results": [], "figures": [], "source": "program"}
    write_json(folder / "record.json", record)
    return folder


def finish_record(folder: Path, summary: str = "") -> None:
    """List the record's files in its record.json, and write its README around `summary` (a table)."""
    record = json.loads((folder / "record.json").read_text())
    record["results"] = sorted(p.name for p in folder.glob("*.json") if p.name != "record.json")
    record["figures"] = sorted(p.name for p in folder.glob("*.png"))
    write_json(folder / "record.json", record)
    figures = "\n".join(f"![{name}]({name})" for name in record["figures"])
    (folder / "README.md").write_text(
        f"# {record['title']}\n\n**Verdict:** (to write, with the question, here and in record.json)\n\n"
        f"**Question:** (to write)\n\n## Setup\n\n```bash\n{record['command']}\n```\n\n"
        f"Commit {record['commit']}; {record['machine']}.\n\n## Results\n\n{summary}\n{figures}\n")


def folder_of(slug: str, root: Path = RESULTS) -> Path:
    (folder,) = [p for p in root.iterdir() if p.name[11:] == slug]
    return folder


def spread(values: list[float], digits: int = 2, to: str = "-") -> str:
    """Mean, and the range over seeds when there are several (`to` between its ends: " to " where
    they can be negative)."""
    mean = f"{np.mean(values):.{digits}f}"
    return mean if len(values) == 1 else f"{mean} ({min(values):.{digits}f}{to}{max(values):.{digits}f})"


def called_tumour(runs: list[dict]) -> str:
    """The share of generated no-tumour slices 06's real-only classifier calls tumour, and of held-out
    real no-tumour scans, over seeds; "-" where it was not measured (before label fidelity existed)."""
    if not all("called_tumour_no_generated" in r for r in runs):
        return "-"
    return (f"{spread([100 * r['called_tumour_no_generated'] for r in runs], 0)} % / "
            f"{spread([100 * r['called_tumour_no_held_out'] for r in runs], 0)} %")


def headline_table(root: Path = RESULTS) -> str:
    """The README's table: per generator, the mean and range over seeds of each figure, and the
    same figures for held-out real scans (as many real scans as the GAN never saw), then the
    two-class default's TSTR at 24,000 steps."""
    lines = ["| generator | trained on | steps | seeds | KID, lower is better | recall | coverage "
             "| TSTR: AUC trained on generated / on real | no-tumour slices called tumour: generated / held-out real "
             "| held-out real scans: KID, recall, coverage | record |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in HEADLINE_ROWS:
        folders = [folder_of(record, root) for record in row.records]
        runs = [r for folder in folders for name, r in json.loads((folder / "quality.json").read_text())["rows"].items()
                if name.startswith(row.rows) and name.endswith(row.ending)]
        steps = sorted({r["steps"] for r in runs})
        tstr = [r["auc_generated_only"] / r["auc_real"] for r in runs if r.get("auc_generated_only") is not None]
        # each seed holds out its own scans: the held-out KID differs by split, so its range is shown
        held_out = [spread([r["kid_baseline_held_out"] for r in runs], to=" to "),
                    *(f"{np.mean([r[key] for r in runs]):.2f}" for key in ("recall_held_out", "coverage_held_out"))]
        cells = [row.generator, row.data, ", ".join(f"{s:,}" for s in steps), str(len(runs)),
                 spread([r["kid"] for r in runs], 3), spread([r["recall_matched"] for r in runs]),
                 spread([r["coverage_matched"] for r in runs]), f"{spread(tstr)}x" if tstr else "- (one class)",
                 called_tumour(runs), ", ".join(held_out),
                 ", ".join(f"[{folder.name}](results/{folder.name}/)" for folder in folders)]
        lines.append("| " + " | ".join(cells) + " |")
    folder = folder_of(LONGEST_RUNS, root)
    longest = [r for r in json.loads((folder / "results.json").read_text())["rows"].values() if r["steps"] == 24000]
    means = [r["tstr_over_draws_mean"] for r in longest]
    lines += ["", f"Mean (range) over seeds. At 24,000 steps the two-class default's TSTR, averaged over draws of "
                  f"its generated training set, is {min(means):.2f}x-{max(means):.2f}x on its {len(longest)} seeds, "
                  f"the worst single draw {min(r['tstr_over_draws_min'] for r in longest):.2f}x "
                  f"([{folder.name}](results/{folder.name}/))."]
    return "\n".join(lines) + "\n"


def readme_with_headline(text: str, table: str) -> str:
    start, end = text.index(HEADLINE[0]) + len(HEADLINE[0]), text.index(HEADLINE[1])
    return text[:start] + table + text[end:]


def index(root: Path = RESULTS) -> str:
    """results/README.md: every record, current ones first, newest first."""
    found = records(root)
    out = ["# Results", "", "<!-- Written by `make results` from each record's record.json: edit those. -->", "",
           "One folder per experiment or benchmark: its `README.md` gives the question, the exact command, the "
           "commit and machine, and the verdict first; beside it are the JSON its program wrote (or, where "
           "`source` is `transcribed`, the numbers of the old README, whose runs were not kept) and the figures. "
           "How to add one: [docs/development.md](../docs/development.md#adding-an-experiment).", ""]
    for status, title in (("current", "Current"), ("superseded", "Superseded (kept for the record)")):
        out += [f"## {title}", "", "| date | record | kind | verdict |", "|---|---|---|---|"]
        for name, record in found.items():
            if record["status"] == status:
                verdict = record["verdict"].replace("|", "\\|").replace("\n", " ")
                later = f" Superseded by [{record['superseded_by']}]({record['superseded_by']}/)." \
                    if record["superseded_by"] else ""
                out.append(f"| {record['date']} | [{record['title']}]({name}/) | {record['kind']} | {verdict}{later} |")
        out.append("")
    return "\n".join(out)


def drifted(root: Path = RESULTS, readme: Path = README) -> list[str]:
    problems = []
    index_path = root / "README.md"
    if not index_path.exists() or index_path.read_text() != index(root):
        problems.append("results/README.md is not what the records' record.json give: run `make results`")
    text = readme.read_text()
    if readme_with_headline(text, headline_table(root)) != text:
        problems.append("README.md's headline table is not what the records' JSON give: run `make results`")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="report drift instead of writing")
    args = parser.parse_args(argv)
    if not args.check:
        (RESULTS / "README.md").write_text(index())
        README.write_text(readme_with_headline(README.read_text(), headline_table()))
    problems = drifted()
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
