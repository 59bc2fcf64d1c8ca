"""A flow's declarations are all it takes: its settings and mapping kinds appear in the
README, the integration page and the mapping form by themselves."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from connections.providers.spec import positive_int
from syncs.flowdocs import flow_docs, readme_path, readme_with_docs
from syncs.flows import FLOWS, Flow, kinds, mapping_kind_choices, setting
from syncs.models import Integration


class TidesToStripe(Flow):
    """A new flow: one module (this class) and one registry line (the fixture)."""

    key = "test.tides"
    label = "Tide tables → Stripe"
    source_kind = "infor_m3"
    target_kind = "stripe"
    stream = "tides"
    ledger_target = "stripe.tide"
    settings = (setting("tides_per_day", "Tides a day", positive_int, default=2, help="How many."),)
    mapping_kinds = (
        kinds.MappingKind("moon_phase", "Moon phase", source="a phase.", target="a tide."),
    )


@pytest.fixture
def tides(monkeypatch: pytest.MonkeyPatch) -> type[Flow]:
    monkeypatch.setitem(FLOWS, TidesToStripe.key, TidesToStripe)
    return TidesToStripe


def test_the_readme_lists_every_flow_s_declarations_as_they_are() -> None:
    readme = readme_path().read_text()
    assert readme_with_docs(readme) == readme, "run: manage.py flowdocs --write"
    for flow in FLOWS.values():
        assert f"(`{flow.key}`," in readme
        assert all(f"`{spec.name}`" in readme for spec in flow.declared_settings())


def test_a_new_flow_s_settings_and_mappings_appear_by_themselves(
    tides: type[Flow], admin_client: Client, make_connection: Any
) -> None:
    docs = flow_docs()
    assert "**Tide tables → Stripe** (`test.tides`, CloudSuite → Stripe)" in docs
    assert "| `tides_per_day` — Tides a day | How many. | 2 |" in docs
    assert "`moon_phase` (Moon phase: a phase)" in docs
    assert ("moon_phase", "Moon phase") in mapping_kind_choices()
    integration = Integration.objects.create(
        name="Tides",
        slug="tides",
        flow=tides.key,
        source=make_connection("infor_m3"),
        target=make_connection("stripe"),
    )
    page = admin_client.get(f"/admin/syncs/integration/{integration.pk}/change/").content
    assert b'name="setting__tides_per_day"' in page and b"Tides a day" in page
    form = admin_client.get("/admin/syncs/fieldmapping/add/").content
    assert b'value="moon_phase"' in form
