"""pyproject's runtime dependencies and requirements.txt must not drift apart."""

from __future__ import annotations

import tomllib

from gan_lib.base.paths import PROJECT_ROOT


def test_every_runtime_dependency_is_in_requirements_with_the_same_range():
    declared = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    lines = {line.strip() for line in (PROJECT_ROOT / "requirements.txt").read_text().splitlines()}
    assert [d for d in declared if d not in lines] == []
