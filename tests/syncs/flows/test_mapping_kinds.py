"""Declared mapping kinds: a flow reads only the kinds it declares, a role is read with one
fallback rule, and a kind no flow declares is offered nowhere."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

from syncs.flows import FLOWS, Mappings, mapping_kind_choices
from syncs.flows.base import Flow
from syncs.flows.kinds import GL_ACCOUNT

FLOWS_DIR = Path(__file__).resolve().parents[3] / "syncs" / "flows"
LITERAL_KIND = re.compile(r'(?:mappings\.get\(\s*|fix=\(\s*)"([a-z0-9_]+)"')


def _flow_modules() -> dict[str, list[type[Flow]]]:
    modules: dict[str, list[type[Flow]]] = {}
    for flow in FLOWS.values():
        modules.setdefault(flow.__module__, []).append(flow)
    return modules


def test_every_kind_a_flow_module_reads_is_declared_by_its_flows() -> None:
    modules = _flow_modules()
    checked = 0
    for path in FLOWS_DIR.glob("*.py"):
        name = f"syncs.flows.{path.stem}"
        read = set(LITERAL_KIND.findall(path.read_text()))
        if not read or path.stem == "base":
            continue
        users = modules.get(name) or [  # a helper: every flow module importing it
            f
            for module, flows in modules.items()
            if name in inspect.getsource(importlib.import_module(module))
            for f in flows
        ]
        assert users, f"{name} reads mappings but no flow uses it"
        for flow in users:
            declared = {k.name for k in flow.mapping_kinds}
            if modules.get(name):  # the module's own flows: one of them declares it
                declared = {k.name for f in users for k in f.mapping_kinds}
            assert read <= declared, f"{flow.key} reads undeclared kinds {read - declared}"
            checked += 1
    assert checked >= 8


def test_reading_an_undeclared_kind_is_a_bug_not_a_silent_miss() -> None:
    mappings = Mappings({("vendor", "V-1"): "S1"}, declared=["gl_account"])
    with pytest.raises(LookupError, match="not declared"):
        mappings.get("vendor", "V-1")


@pytest.mark.parametrize(
    ("table", "currency", "found"),
    [
        (
            {
                ("gl_account", "stripe_receipts:EUR"): "1931",
                ("gl_account", "stripe_receipts"): "1930",
            },
            "eur",
            "1931",
        ),
        ({("gl_account", "stripe_receipts"): "1930"}, "SEK", "1930"),
        ({("gl_account", "stripe_receipts:EUR"): "1931"}, "SEK", None),
    ],
)
def test_a_role_is_read_for_its_currency_then_for_every_currency(
    table: dict[tuple[str, str], str], currency: str, found: str | None
) -> None:
    kind = GL_ACCOUNT.reading("stripe_receipts", per_currency=True)
    assert kind.resolve(Mappings(table), "stripe_receipts", currency) == found


def test_the_same_fallback_holds_for_every_flow_that_reads_roles() -> None:
    roles = [
        (flow.key, kind)
        for flow in FLOWS.values()
        for kind in flow.mapping_kinds
        if kind.roles and kind.per_currency
    ]
    assert {key for key, _ in roles} >= {
        "stripe_m3.payments",
        "wise_m3.payments",
        "stampli_m3.payments",
    }
    for _key, kind in roles:
        role = kind.roles[0]
        general = Mappings({(kind.name, role): "1930"})
        assert kind.resolve(general, role, "NOK") == "1930"
        assert kind.source_problem(f"{role}:NOK") == ""
        assert kind.source_problem(f"{role}x") != ""


def test_only_declared_kinds_are_offered_each_once() -> None:
    offered = [name for name, _ in mapping_kind_choices()]
    declared = {k.name for flow in FLOWS.values() for k in flow.mapping_kinds}
    assert sorted(offered) == sorted(declared)
    assert "customer" not in offered and "gl_account" in offered
