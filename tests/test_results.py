"""The front door: the README, the docs and the experiment records stay short, linked and true to
the records' JSON (what `make results` writes is what is committed)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from gan_lib.base.paths import PROJECT_ROOT
from gan_lib.scripts import results

PAGES = [PROJECT_ROOT / "README.md", PROJECT_ROOT / "MODEL_CARD.md", *sorted((PROJECT_ROOT / "docs").glob("*.md")),
         *sorted((PROJECT_ROOT / "results").glob("**/README.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of a Markdown page's headings."""
    return {re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
            for line in page.read_text().splitlines() if line.startswith("#")}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(PROJECT_ROOT)))
def test_every_relative_link_resolves(page):
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        assert resolved.exists(), f"{page.name}: {target} does not exist"
        if anchor and resolved.suffix == ".md":
            assert anchor in anchors(resolved), f"{page.name}: {target}: no such heading"


def test_the_readme_is_short_and_opens_with_the_figure_and_the_headline_table():
    lines = (PROJECT_ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 150
    opening = "\n".join(lines[:60])
    assert re.search(r"!\[[^\]]*\]\(docs/[^)]+\.png\)", opening), "the figure"
    assert results.HEADLINE[0].strip() in opening and "| generator |" in opening, "the headline table"
    for page in sorted((PROJECT_ROOT / "docs").glob("*.md")):
        assert len(page.read_text().splitlines()) <= 260, f"{page.name} is over ~250 lines"


def test_the_index_and_the_headline_table_are_what_the_records_give():
    assert results.drifted() == [], "run `make results`"


def test_a_headline_number_edited_by_hand_is_drift(tmp_path):
    readme = tmp_path / "README.md"
    table = results.headline_table()
    first_kid = table.splitlines()[2].split(" | ")[4]
    readme.write_text((PROJECT_ROOT / "README.md").read_text().replace(first_kid, "0.001", 1))
    assert results.drifted(readme=readme) == [
        "README.md's headline table is not what the records' JSON give: run `make results`"]


def test_every_record_has_its_fields_and_files():
    found = results.records()
    assert len(found) >= 20
    for name, record in found.items():
        folder = PROJECT_ROOT / "results" / name
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}-[a-z0-9-]+", name) and record["date"] == name[:10]
        assert record["status"] in ("current", "superseded") and record["source"] in ("program", "transcribed")
        assert (record["superseded_by"] in found) == (record["status"] == "superseded"), name
        for file in record["results"] + record["figures"]:
            assert (folder / file).exists(), f"{name}: {file} is listed but missing"
        assert (folder / "README.md").exists()


def test_a_program_writes_a_record_that_waits_for_its_verdict(tmp_path, monkeypatch):
    monkeypatch.setattr("sys.argv", [str(PROJECT_ROOT / "gan_lib" / "scripts" / "bench.py"), "--record", "my test"])
    folder = results.start_record("my-test", "benchmark", "A test record", root=tmp_path)
    (folder / "bench.json").write_text(json.dumps({"steps_per_s": 1.0}))
    results.finish_record(folder, "| a | b |")
    record = json.loads((folder / "record.json").read_text())
    assert record["results"] == ["bench.json"] and record["command"] == "python -m gan_lib.scripts.bench --record 'my test'"
    assert record["commit"] and record["machine"].split(",")[0]
    assert "| a | b |" in (folder / "README.md").read_text()
    with pytest.raises(ValueError, match="write its question and verdict"):
        results.records(tmp_path)
    with pytest.raises(FileExistsError):
        results.start_record("my-test", "benchmark", "again", root=tmp_path)


def test_every_make_command_in_the_readme_and_docs_is_a_target_make_accepts():
    """Each documented `make ...` line, its placeholders filled, parses (`make -n`: nothing runs)."""
    import shlex
    import subprocess

    commands = set()
    for page in [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))]:
        for block in re.findall(r"```bash\n(.*?)```", page.read_text(), re.S):
            lines = block.replace("\\\n", " ").splitlines()  # continued lines joined
            commands |= {line.split("#")[0].strip() for line in lines if line.startswith("make ")}
    assert len(commands) >= 6
    for command in sorted(commands):
        words = shlex.split(re.sub(r"<[^>]*>", "x", command.replace("[", "").replace("]", "")))[1:]
        done = subprocess.run(["make", "-n", "-C", str(PROJECT_ROOT), *words], capture_output=True, text=True)
        assert done.returncode == 0, f"{command}: {done.stderr}"
