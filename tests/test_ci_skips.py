"""No silent skips: a missing outside dependency (esorex, PostgreSQL, Chromium,
../shared/realdata) skips its tests loudly, and under CI=true fails the run with the
reason; scripts/system-deps.sh stops a CI run that lacks them."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEER_TEST = "tests/test_esorex_peer.py::test_closer_to_the_truth_as_declared[gain]"
SKIPPERS = {"skip", "skipif", "importorskip", "xfail"}


def _run_pytest(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _env(**changes: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "QC_ESOREX")}
    env.update({k: v for k, v in changes.items() if v is not None})
    return env


def test_ci_run_without_esorex_fails_with_the_reason() -> None:
    """CI=true and no esorex on PATH: the peer test fails (before simulating anything)
    and says why."""
    venv_only = str(Path(sys.executable).parent)  # no /usr/bin: no esorex
    done = _run_pytest(_env(CI="true", PATH=venv_only), PEER_TEST)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "CI=true and a dependency is missing" in output, output
    assert "esorex is not installed (Debian: apt-get install esorex)" in output, output
    assert "1 error" in output, output


def test_local_run_without_esorex_skips_loudly() -> None:
    """Outside CI the same run passes with the test skipped and the reason shown."""
    done = _run_pytest(_env(QC_ESOREX="/nonexistent/esorex"), PEER_TEST)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "1 skipped" in output, output
    assert "ESOREX PEER TESTS SKIPPED: esorex not found at '/nonexistent/esorex'" in output


def _calls_and_marks(tree: ast.AST) -> list[tuple[int, str, ast.AST]]:
    """(line, name, enclosing function) of every pytest.skip/skipif/importorskip/xfail
    call or mark (``pytest.skip(...)``, ``pytest.mark.skipif``, ``@pytest.mark.xfail``)."""
    found = []

    def visit(node: ast.AST, function: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            inner = child if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else function
            if isinstance(child, ast.Attribute) and child.attr in SKIPPERS:
                found.append((child.lineno, ast.unparse(child), function))
            visit(child, inner)

    visit(tree, tree)
    return sorted(found, key=lambda item: item[0])


def test_every_skip_goes_through_missing_dependency() -> None:
    """In tests/, only conftest.missing_dependency may skip (so CI=true can fail it)."""
    offenders = []
    for path in sorted(ROOT.glob("tests/**/*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for line, name, function in _calls_and_marks(tree):
            inside = getattr(function, "name", None)
            if not (path == ROOT / "tests" / "conftest.py" and inside == "missing_dependency"):
                offenders.append(f"{path.relative_to(ROOT)}:{line}: {name}")
    assert not offenders, "skips that CI=true cannot turn into failures:\n" + "\n".join(offenders)


def test_the_audit_finds_a_stray_skip() -> None:
    """The audit above sees skips, skipif marks and importorskip outside conftest."""
    source = (
        "import pytest\n"
        "np = pytest.importorskip('numpy')\n"
        "@pytest.mark.skipif(True, reason='x')\n"
        "def test_a():\n"
        "    pytest.skip('no')\n"
    )
    names = [name for _, name, _ in _calls_and_marks(ast.parse(source))]
    assert names == ["pytest.importorskip", "pytest.mark.skipif", "pytest.skip"]


def _deps_script(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    """scripts/system-deps.sh with a PATH holding only ``ls`` and ``id``: no esorex,
    no apt-get (so nothing can be installed, root or not)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("ls", "id"):
        (bin_dir / tool).symlink_to(next(Path(d) / tool for d in ("/usr/bin", "/bin")))
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path)}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        ["/bin/bash", str(ROOT / "scripts" / "system-deps.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_system_deps_stops_a_ci_run_it_cannot_complete(tmp_path: Path) -> None:
    done = _deps_script(tmp_path, "true")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "MISSING esorex" in done.stdout
    assert "apt-get install esorex" in done.stdout
    assert "CI=true: every test must run; stopping here." in done.stdout


def test_system_deps_outside_ci_warns_and_goes_on(tmp_path: Path) -> None:
    done = _deps_script(tmp_path, None)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "MISSING esorex" in done.stdout
    assert "will be SKIPPED" in done.stdout
