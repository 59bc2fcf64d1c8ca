"""The import contracts hold on this tree, and they do fail on an upward import."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("mlconnector", "connections", "syncs", "audit")
LINT = str(Path(sys.executable).with_name("lint-imports"))


def lint(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LINT, "--config", str(tree / "pyproject.toml"), "--no-cache"],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the project's packages and its import contracts."""
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_contracts_hold(tree: Path) -> None:
    result = lint(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        ("connections/providers/http.py", "import syncs.runner", "Layers"),
        ("audit/ledger.py", "from syncs import models", "Layers"),
        ("connections/providers/stripe/client.py", "import audit.models", "Providers import"),
        ("connections/sandbox/m3.py", "import connections.providers.http", "Simulators"),
        ("syncs/flows/base.py", "import syncs.flows.stripe_m3_payments", "No import cycles"),
    ],
)
def test_an_upward_or_circular_import_breaks_a_contract(
    tree: Path, module: str, line: str, broken: str
) -> None:
    path = tree / module
    path.write_text(path.read_text() + f"\n{line}  # added by the test\n")
    result = lint(tree)
    assert result.returncode == 1, result.stdout
    contract = next(row for row in result.stdout.splitlines() if row.startswith(broken))
    assert contract.endswith("BROKEN")
