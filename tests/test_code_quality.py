"""The project's own rules, checked like any other behaviour: lint, import contracts, types,
and environment.yml mirroring pyproject.toml."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(tool: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / tool), *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_ruff() -> None:
    result = _run("ruff", "check", "qclib", "tests", "bench")
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_contracts_keep_the_core_pure() -> None:
    result = _run("lint-imports")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_on_the_pure_core() -> None:
    result = _run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=\[ ]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requirements}


def test_environment_yml_mirrors_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = _names(project["dependencies"] + project["optional-dependencies"]["dev"])
    text = (ROOT / "environment.yml").read_text()
    listed = _names(
        [
            line.strip()[2:]
            for line in text.splitlines()
            if line.strip().startswith("- ") and "python" not in line
        ]
    )
    renamed = {"psycopg": "psycopg", "dask": "dask"}
    missing = {renamed.get(n, n) for n in wanted} - listed
    assert not missing, f"environment.yml lacks {sorted(missing)}"
