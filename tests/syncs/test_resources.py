"""Mapping imports refuse what the mapping form refuses, row by row in plain words, from the
CSV files spreadsheets write (comma, semicolon, tab); nothing is saved while any row is wrong."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from connections.models import Connection
from connections.sandbox.base import Served
from syncs.models import FieldMapping, Integration
from tests.test_admin_site import _staff

HEADER = ["integration", "kind", "source_value", "target_value", "note"]


@pytest.fixture
def stampli_like(m3_connection: Connection, m3_sim: Served, make_connection: Any) -> Integration:
    """An integration posting to the CloudSuite simulator, whose chart and suppliers are known."""
    m3_sim.app.state.put_account("1930", "Bank")
    m3_sim.app.state.put_account("6110", "Office supplies")
    m3_sim.app.state.put_supplier("S100", SUNM="Acme Supplies")
    integration = Integration.objects.create(
        name="Stampli invoices",
        slug="stampli-invoices",
        flow="stampli_m3.invoices",
        source=make_connection("stripe"),
        target=m3_connection,
    )
    return integration


@pytest.fixture
def reviewer(client: Client, db: Any) -> Client:
    client.force_login(_staff("rita", groups=("Finance reviewer",)))
    return client


def preview(client: Client, text: str, name: str = "m.csv") -> Any:
    return client.post(
        "/admin/syncs/fieldmapping/import/",
        {
            "format": "0",
            "resource": "0",
            "import_file": SimpleUploadedFile(name, text.encode("utf-8-sig"), "text/csv"),
        },
    )


def rows(separator: str, *lines: list[str]) -> str:
    return "\r\n".join(separator.join(cells) for cells in [HEADER, *lines]) + "\r\n"


@pytest.mark.parametrize("separator", [",", ";", "\t"])
def test_a_good_file_with_any_separator_previews_then_saves(
    reviewer: Client, stampli_like: Integration, separator: str
) -> None:
    text = rows(
        separator,
        ["stampli-invoices", "gl_account", "6000", "6110", "Office"],
        ["stampli-invoices", "vendor", "V-1", "S100", ""],
    )
    shown = preview(reviewer, text)
    assert shown.status_code == 200
    confirm = shown.context["confirm_form"]
    assert confirm is not None, shown.content.decode()[:3000]
    assert not FieldMapping.objects.exists()  # nothing before the confirmation
    done = reviewer.post("/admin/syncs/fieldmapping/process_import/", dict(confirm.initial))
    assert done.status_code == 302
    assert dict(FieldMapping.objects.values_list("source_value", "target_value")) == {
        "6000": "6110",
        "V-1": "S100",
    }


def test_every_row_s_problem_is_worded_and_nothing_is_saved(
    reviewer: Client, stampli_like: Integration
) -> None:
    text = rows(
        ";",
        ["stampli-invoices", "gl_account", "6000", "4999", "not in the chart"],
        ["stampli-invoices", "vendor", "V-9", "S999", "no such supplier"],
        ["no-such-integration", "gl_account", "7000", "1930", ""],
        ["stampli-invoices", "not_a_kind", "1", "2", ""],
        ["stampli-invoices", "gl_account", "6100", "", "no target"],
        ["stampli-invoices", "gl_account", "6200", "6110", "this one is fine"],
    )
    shown = preview(reviewer, text)
    assert shown.status_code == 200
    body = shown.content.decode()
    assert "Traceback" not in body and "/site-packages/" not in body and "File &quot;" not in body
    assert shown.context.get("confirm_form") is None  # no Confirm while any row is wrong
    for words in (
        "Account 4999 is not in CloudSuite",
        "Supplier S999 does not exist in CloudSuite",
        "There is no integration “no-such-integration”",
        "“not_a_kind” is not a kind of mapping",
        "Give the value in the target system.",
    ):
        assert words in body.replace("&quot;", '"').replace("&#x27;", "'"), words
    assert not FieldMapping.objects.exists()


def test_the_form_and_the_import_refuse_the_same_supplier(
    reviewer: Client, stampli_like: Integration
) -> None:
    form = {
        "integration": stampli_like.pk,
        "kind": "vendor",
        "source_value": "V-9",
        "target_value": "S999",
        "note": "",
    }
    refused = reviewer.post("/admin/syncs/fieldmapping/add/", form)
    assert refused.status_code == 200
    assert "Supplier S999 does not exist in CloudSuite" in refused.content.decode()
    saved = reviewer.post("/admin/syncs/fieldmapping/add/", {**form, "target_value": "S100"})
    assert saved.status_code == 302


@pytest.mark.parametrize(
    "text",
    [
        "",
        "integration\n",
        "just some words\nand more\n",
        "a;b;c\n1;2;3\n",
        "integration,kind\nx,y\n",
        '"unterminated,quote\n',
    ],
)
def test_a_file_that_is_not_a_mapping_file_is_a_plain_error(
    reviewer: Client, stampli_like: Integration, text: str
) -> None:
    shown = preview(reviewer, text)
    assert shown.status_code == 200
    body = shown.content.decode()
    assert "Traceback" not in body and "site-packages" not in body
    assert not FieldMapping.objects.exists()


def test_the_chart_is_read_once_for_a_whole_file(
    reviewer: Client, stampli_like: Integration, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connections.providers.infor_m3 import InforM3

    reads: list[Any] = []
    real = InforM3.chart_of_accounts
    monkeypatch.setattr(InforM3, "chart_of_accounts", lambda c: reads.append(c) or real(c))
    lines = [["stampli-invoices", "gl_account", str(6000 + n), "6110", ""] for n in range(30)]
    shown = preview(reviewer, rows(",", *lines))
    assert shown.context.get("confirm_form") is not None
    assert len(reads) == 1  # once for the file, not once per row


def test_every_mapping_kind_a_flow_declares_can_be_made_in_the_admin_and_by_csv(
    reviewer: Client, m3_connection: Connection, make_connection: Any
) -> None:
    """The form offers each declared kind with its help; an import takes them for the
    integration whose flow reads them (here Cin7's, which no CloudSuite chart checks)."""
    from syncs.flows import FLOWS

    Integration.objects.create(
        name="Cin7 purchases",
        slug="cin7-purchases",
        flow="m3_cin7.purchases",
        source=m3_connection,
        target=make_connection("cin7"),
    )
    Integration.objects.create(
        name="Cin7 suppliers",
        slug="cin7-suppliers",
        flow="m3_cin7.suppliers",
        source=m3_connection,
        target=Connection.objects.get(kind="cin7"),
    )
    declared = {k.name: k for flow in FLOWS.values() for k in flow.mapping_kinds}
    form = reviewer.get("/admin/syncs/fieldmapping/add/").content.decode()
    for name, kind in declared.items():
        assert f'value="{name}"' in form and kind.label in form
    assert 'value="customer"' not in form  # no flow reads it: not offered
    text = rows(
        ",",
        ["cin7-purchases", "tax_rule", "25", "Tax on Purchases", ""],
        ["cin7-suppliers", "payment_term", "30", "30 days", ""],
    )
    shown = preview(reviewer, text)
    assert shown.context.get("confirm_form") is not None, shown.content.decode()[-2000:]


def test_a_mapping_its_integration_never_reads_is_refused_with_what_it_does_read(
    reviewer: Client, stampli_like: Integration
) -> None:
    text = rows(
        ",",
        ["stampli-invoices", "payment_term", "30", "30 days", ""],
        ["stampli-invoices", "gl_account", "stripe_receipts", "1930", "any code: fine"],
    )
    body = preview(reviewer, text).content.decode().replace("&quot;", '"').replace("&#x27;", "'")
    assert (
        "Stampli invoices reads no “Cin7 Core payment term” mappings; it reads: Vendor / "
        "supplier, GL account, Cost centre (CloudSuite dimension)." in body
    )
    payments = Integration.objects.create(
        name="Stampli payments",
        slug="stampli-payments",
        flow="stampli_m3.payments",
        source=stampli_like.source,
        target=stampli_like.target,
    )
    form = {
        "integration": payments.pk,
        "kind": "gl_account",
        "source_value": "stampli_apx:EUR",
        "target_value": "1930",
        "note": "",
    }
    refused = reviewer.post("/admin/syncs/fieldmapping/add/", form).content.decode()
    assert "“stampli_apx:EUR” is never read as a GL account" in refused
    bad_currency = {**form, "source_value": "stampli_ap:EURO"}
    assert (
        "“EURO” is not a currency code"
        in reviewer.post("/admin/syncs/fieldmapping/add/", bad_currency).content.decode()
    )
    saved = reviewer.post("/admin/syncs/fieldmapping/add/", {**form, "source_value": "stampli_ap"})
    assert saved.status_code == 302


# -- shared mappings (issue 23, item 11) ------------------------------------------------------


def test_a_shared_mapping_is_imported_once_for_every_integration_on_its_connection(
    reviewer: Client, stampli_like: Integration, m3_connection: Connection
) -> None:
    from syncs.flows import get_flow
    from syncs.run.context import run_mappings

    payments = Integration.objects.create(
        name="Stampli payments",
        slug="stampli-payments",
        flow="stampli_m3.payments",
        source=stampli_like.source,
        target=m3_connection,
    )
    header = "integration,connection,kind,source_value,target_value,note\r\n"
    text = (
        header
        + f",{m3_connection.slug},vendor,V-1,S100,Acme for every Stampli integration\r\n"
        + f",{m3_connection.slug},gl_account,stampli_ap,6110,\r\n"
        + "stampli-payments,,gl_account,stampli_ap,1930,this one books it elsewhere\r\n"
    )
    shown = preview(reviewer, text)
    confirm = shown.context["confirm_form"]
    assert confirm is not None, shown.content.decode()[:3000]
    reviewer.post("/admin/syncs/fieldmapping/process_import/", dict(confirm.initial))
    shared = FieldMapping.objects.filter(integration=None, connection=m3_connection)
    assert shared.count() == 2
    invoices = run_mappings(stampli_like, get_flow(stampli_like.flow)())
    paying = run_mappings(payments, get_flow(payments.flow)())
    assert invoices.get("vendor", "V-1") == paying.get("vendor", "V-1") == "S100"
    assert invoices.get("gl_account", "stampli_ap") == "6110"
    assert paying.get("gl_account", "stampli_ap") == "1930"  # its own mapping wins


def test_a_mapping_is_one_integrations_or_shared_and_shared_ones_are_checked_too(
    reviewer: Client, stampli_like: Integration, m3_connection: Connection
) -> None:
    from syncs.forms import FieldMappingForm

    base = {"kind": "gl_account", "source_value": "6000", "target_value": "6110"}
    neither = FieldMappingForm(data=base)
    assert not neither.is_valid() and "Choose the integration" in str(neither.errors)
    both = FieldMappingForm(
        data={**base, "integration": stampli_like.pk, "connection": m3_connection.pk}
    )
    assert not both.is_valid() and "leave one of them blank" in str(both.errors)
    wrong = FieldMappingForm(data={**base, "connection": m3_connection.pk, "target_value": "9999"})
    assert not wrong.is_valid() and "9999" in str(wrong.errors["target_value"])
    ok = FieldMappingForm(data={**base, "connection": m3_connection.pk})
    assert ok.is_valid(), ok.errors
    saved = ok.save()
    assert saved.applies_to == f"Shared: all into {m3_connection}"
    page = reviewer.get("/admin/syncs/fieldmapping/").content.decode()
    assert f"Shared: all into {m3_connection}" in page
