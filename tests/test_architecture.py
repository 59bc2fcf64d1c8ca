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


# Where a system may be named: its provider package, the registry, the flows (each flow is
# between two named systems), the simulators and the demo that wires them together.
MAY_NAME_SYSTEMS = (
    "connections/providers/",
    "connections/sandbox/",
    "syncs/flows/",
    "syncs/demo.py",
    "syncs/management/commands/demo.py",
    "/migrations/",
)


def _engine_modules() -> list[Path]:
    return [
        path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if not any(part in path.as_posix() for part in MAY_NAME_SYSTEMS)
    ]


def test_no_engine_admin_or_audit_module_names_a_system() -> None:
    """Generic code asks the registry for a capability or a flow for its declaration; it never
    imports a system's provider or compares a kind with a system's name."""
    import ast

    from connections.providers.registry import SYSTEMS

    kinds = set(SYSTEMS)
    packages = {
        f"connections.providers.{p.stem}"
        for p in (ROOT / "connections" / "providers").iterdir()
        if p.is_dir() and (p / "__init__.py").exists()
    }
    named = []
    for path in _engine_modules():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and any(node.module == p or node.module.startswith(p + ".") for p in packages)
            ):
                named.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {node.module}")
            if isinstance(node, ast.Compare) and any(
                isinstance(c, ast.Constant) and c.value in kinds for c in node.comparators
            ):
                named.append(f"{path.relative_to(ROOT)}:{node.lineno} compares with a kind")
            if isinstance(node, ast.keyword) and node.arg in ("kind", "kind__in", "flow"):
                value = node.value
                if isinstance(value, ast.Constant) and value.value in kinds:
                    named.append(f"{path.relative_to(ROOT)}:{node.lineno} filters on a kind")
    assert len(_engine_modules()) > 40
    assert named == []
