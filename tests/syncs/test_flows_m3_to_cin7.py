"""CloudSuite → Cin7 Core suppliers, end to end against the M3 simulator and the Cin7 simulator
that checks every call against Cin7's OpenAPI file: created, updated, matched by name, ambiguous
(flagged), and made once even when the answer to the POST is lost."""

from __future__ import annotations

import pytest

from audit.models import AuditRecord, PostingLedger, ReviewItem
from connections.models import Connection
from connections.sandbox.base import Served
from connections.sandbox.cin7 import Cin7Simulator
from connections.sandbox.m3 import M3Simulator
from syncs.models import Integration, SyncRun
from syncs.runner import Runner

S = AuditRecord.Status
BASE = {
    "Currency": "EUR",
    "PaymentTerm": "30 days",
    "AccountPayable": "800",
    "TaxRule": "Tax Exempt",
}


@pytest.fixture
def m3(m3_sim: Served) -> M3Simulator:
    sim: M3Simulator = m3_sim.app  # type: ignore[assignment]
    sim.state.put_supplier("S1", SUNM="Nord Kontor AB", CUCD="SEK", VRNO="SE5560000001")
    sim.state.put_supplier("S2", SUNM="Atelier Lumière SARL", CUCD="EUR")
    return sim


@pytest.fixture
def cin7(cin7_sim: Served) -> Cin7Simulator:
    return cin7_sim.app  # type: ignore[return-value]


@pytest.fixture
def suppliers(m3_connection: Connection, cin7_connection: Connection) -> Integration:
    integ = Integration(
        name="Suppliers to Cin7",
        slug="suppliers-cin7",
        flow="m3_cin7.suppliers",
        source=m3_connection,
        target=cin7_connection,
    )
    integ.full_clean()
    integ.save()
    return integ


def run(integ: Integration) -> SyncRun:
    return Runner(Integration.objects.get(pk=integ.pk), trigger="manual").run()


def by_vendor(cin7: Cin7Simulator) -> dict[str, dict]:
    return {
        s["AdditionalAttribute1"]: s for s in cin7.suppliers.values() if s["AdditionalAttribute1"]
    }


def test_suppliers_are_created_then_updated_and_each_decision_audited(
    suppliers: Integration, m3: M3Simulator, cin7: Cin7Simulator
) -> None:
    first = run(suppliers)
    assert first.synced == 2 and sorted(by_vendor(cin7)) == ["S1", "S2"]
    assert by_vendor(cin7)["S1"]["TaxNumber"] == "SE5560000001"
    assert all("created" in r.reason for r in first.records.all())
    m3.state.put_supplier("S1", SUNM="Nord Kontor Holding AB")
    second = run(suppliers)
    changed = second.records.get(source_key="S1")
    assert changed.status == S.SYNCED and "by its number in AdditionalAttribute1" in changed.reason
    assert "updated Name" in changed.reason
    assert by_vendor(cin7)["S1"]["Name"] == "Nord Kontor Holding AB" and len(cin7.suppliers) == 2
    assert cin7.violations == []


def test_a_supplier_known_by_name_gets_its_number(
    suppliers: Integration, m3: M3Simulator, cin7: Cin7Simulator
) -> None:
    cin7._suppliers("POST", {}, {**BASE, "Name": "Nord Kontor AB", "Currency": "SEK"})
    done = run(suppliers)
    record = done.records.get(source_key="S1")
    assert "by its exact name" in record.reason and len(cin7.suppliers) == 2
    assert by_vendor(cin7)["S1"]["Name"] == "Nord Kontor AB"


def test_an_ambiguous_match_is_flagged_not_guessed(
    suppliers: Integration, m3: M3Simulator, cin7: Cin7Simulator
) -> None:
    for _ in range(2):
        cin7._suppliers("POST", {}, {**BASE, "Name": "Atelier Lumière SARL"})
    done = run(suppliers)
    flagged = done.records.get(source_key="S2")
    assert flagged.status == S.FLAGGED and "matches 2 Cin7 suppliers" in flagged.reason
    assert len(cin7.suppliers) == 3  # S1 created; nothing made or changed for S2


def test_a_lost_answer_on_create_makes_one_supplier(
    suppliers: Integration, m3: M3Simulator, cin7: Cin7Simulator
) -> None:
    cin7.faults.add("lose_response", match="POST /ExternalApi/v2/supplier", count=1)
    first = run(suppliers)
    assert first.failed >= 1
    run(suppliers)
    assert sorted(by_vendor(cin7)) == ["S1", "S2"] and len(cin7.suppliers) == 2
    # The record is in Cin7 once: its "did not confirm" failure is closed, not left open.
    assert not AuditRecord.objects.filter(
        integration=suppliers, status=S.FAILED, resolved_at=None
    ).exists()
    assert run(suppliers).synced == 0 and cin7.violations == []  # a re-run writes nothing


def test_cloudsuite_accounts_missing_in_cin7_are_listed_for_review(
    m3_connection: Connection, cin7_connection: Connection, m3: M3Simulator, cin7: Cin7Simulator
) -> None:
    for code, name in (("429", "General expenses"), ("6110", "Office supplies"), ("6540", "IT")):
        m3.state.put_account(code, name)
    cin7.put_account("429", "General expenses")
    cin7.put_account("6100", "Office costs")
    integ = Integration(
        name="Chart check",
        slug="chart-cin7",
        flow="m3_cin7.accounts",
        source=m3_connection,
        target=cin7_connection,
    )
    integ.full_clean()
    integ.save()
    first = run(integ)
    flagged = {r.source_key: r.reason for r in first.records.filter(status=S.FLAGGED)}
    assert sorted(flagged) == ["6110", "6540"] and "read-only" in flagged["6110"]
    # a check: it judged each against Cin7's chart as it was, and posted nothing
    assert first.records.get(source_key="6540").looked_up == {"account": "6540", "present": False}
    assert not PostingLedger.objects.filter(integration=integ).exists()
    from syncs.models import FieldMapping
    from syncs.services import records_replay

    FieldMapping.objects.create(
        integration=integ, kind="cin7_account", source_value="6110", target_value="6100"
    )
    record = first.records.get(source_key="6110")
    (replayed,) = records_replay(record_ids=[record.pk])
    assert replayed.records.get().status == S.SKIPPED  # it posts to 6100 now
    run(integ)
    waiting = ReviewItem.objects.filter(
        integration=integ, status=S.FLAGGED, resolved_at=None
    ).values_list("source_key", flat=True)
    assert list(waiting) == ["6540"]
    assert cin7.violations == []


@pytest.fixture
def purchases(
    m3_connection: Connection, cin7_connection: Connection, suppliers: Integration
) -> Integration:
    integ = Integration(
        name="Purchases to Cin7",
        slug="purchases-cin7",
        flow="m3_cin7.purchases",
        source=m3_connection,
        target=cin7_connection,
        settings={"default_account": "429"},
    )
    integ.full_clean()
    integ.save()
    return integ


@pytest.fixture
def taxed(purchases: Integration) -> Integration:
    """VAT code 25 is Cin7's "Tax on Purchases" (25 %)."""
    from syncs.models import FieldMapping

    FieldMapping.objects.create(
        integration=purchases, kind="tax_rule", source_value="25", target_value="Tax on Purchases"
    )
    return purchases


def order(m3: M3Simulator, number: str, *items: tuple[str, str, str]) -> None:
    m3.state.add_purchase_order(
        number,
        "S1",
        "SEK",
        pudt="20261120",
        lines=[
            {"ITNO": i, "ITDS": f"Item {i}", "ORQA": q, "PUPR": p, "VTCD": "25"}
            for i, q, p in items
        ],
    )


def test_a_purchase_order_and_its_invoice_become_one_cin7_purchase(
    taxed: Integration, suppliers: Integration, m3: M3Simulator, cin7: Cin7Simulator
) -> None:
    from syncs.models import FieldMapping

    purchases = taxed
    cin7.put_account("429", "General expenses")
    cin7.put_account("310", "Cost of goods sold")
    FieldMapping.objects.create(
        integration=purchases, kind="item_account", source_value="PAPER", target_value="310"
    )
    order(m3, "PO-1", ("PAPER", "10", "12.50"), ("TONER", "2", "40.00"))
    # 125.00 + 80.00 net, 25 % VAT: 256.25 as CloudSuite's invoice says
    m3.state.add_supplier_invoice("S1", "NK-500", "256.25", "SEK", due="20261220", PUNO="PO-1")
    waiting = run(purchases).records.get()
    assert waiting.status == S.FAILED and waiting.retryable and "not in Cin7 yet" in waiting.reason
    run(suppliers)
    done = run(purchases)
    record = done.records.get(source_key="PO-1")
    assert record.status == S.SYNCED and "invoice NK-500" in record.reason, record.reason
    (task,) = cin7.purchases.values()
    assert task["Status"] == "INVOICED" and task["Invoice"]["InvoiceNumber"] == "NK-500"
    assert [line["Account"] for line in task["Invoice"]["Lines"]] == ["310", "429"]
    assert [line["Tax"] for line in task["Invoice"]["Lines"]] == [31.25, 20.0]
    assert task["Order"]["Memo"] == "CloudSuite PO PO-1"
    assert record.response_summary["Total"] == 256.25  # read back: Cin7 equals CloudSuite
    assert run(purchases).synced == 0 and len(cin7.purchases) == 1  # posted once
    assert cin7.violations == []


@pytest.mark.parametrize(
    "lost", ["POST /ExternalApi/v2/purchase$", "/purchase/order", "/purchase/invoice"]
)
def test_a_lost_answer_at_each_create_leaves_no_duplicate_and_no_stale_failure(
    taxed: Integration, suppliers: Integration, m3: M3Simulator, cin7: Cin7Simulator, lost: str
) -> None:
    purchases = taxed
    cin7.put_account("429", "General expenses")
    run(suppliers)
    order(m3, "PO-2", ("PAPER", "1", "10.00"))
    m3.state.add_supplier_invoice("S1", "NK-502", "12.50", "SEK", due="20261220", PUNO="PO-2")
    match = lost if not lost.endswith("$") else lost[:-1]
    cin7.faults.add("lose_response", match=match, count=1)
    run(purchases)
    again = run(purchases)
    assert len(cin7.purchases) == 1, list(again.records.values_list("reason", flat=True))
    (task,) = cin7.purchases.values()
    assert task["Order"]["Status"] == "AUTHORISED" and task["Invoice"]["Status"] == "AUTHORISED"
    assert cin7.faults.taken.get("lose_response") == 1
    assert not AuditRecord.objects.filter(
        integration=purchases, status=S.FAILED, resolved_at=None
    ).exists()
    assert run(purchases).synced == 0 and len(cin7.purchases) == 1  # a re-run writes nothing
    assert cin7.violations == []


def test_vat_that_would_not_add_up_to_cloudsuite_s_invoice_is_flagged_before_posting(
    purchases: Integration, suppliers: Integration, m3: M3Simulator, cin7: Cin7Simulator
) -> None:
    from syncs.models import FieldMapping

    cin7.put_account("429", "General expenses")
    run(suppliers)
    order(m3, "PO-4", ("PAPER", "4", "25.00"))
    m3.state.add_supplier_invoice("S1", "NK-504", "125.00", "SEK", due="20261220", PUNO="PO-4")
    flagged = run(purchases).records.get()  # VAT code 25 unmapped: Tax Exempt, 100.00
    assert flagged.status == S.FLAGGED and "would total 100.00" in flagged.reason
    assert "is 125.00" in flagged.reason and cin7.purchases == {}
    FieldMapping.objects.create(
        integration=purchases, kind="tax_rule", source_value="25", target_value="VAT 25"
    )
    unknown = run(purchases).records.get(status=S.FLAGGED, resolved_at=None)
    assert "no active purchase tax rule “VAT 25”" in unknown.reason
    assert (unknown.fix_kind, unknown.fix_value) == ("tax_rule", "25")
    FieldMapping.objects.filter(kind="tax_rule").update(target_value="Tax on Purchases")
    from syncs.services import records_replay

    (posted,) = records_replay(record_ids=[unknown.pk])
    assert posted.synced == 1
    (task,) = cin7.purchases.values()
    assert task["Invoice"]["Lines"][0]["Tax"] == 25.0 and cin7.violations == []


def test_a_line_without_an_account_is_flagged_then_replayed_once_mapped(
    purchases: Integration, suppliers: Integration, m3: M3Simulator, cin7: Cin7Simulator
) -> None:
    from syncs.models import FieldMapping
    from syncs.services import records_replay

    cin7.put_account("310", "Cost of goods sold")
    Integration.objects.filter(pk=purchases.pk).update(settings={})
    run(suppliers)
    order(m3, "PO-3", ("PAPER", "1", "10.00"))
    flagged = run(purchases).records.get()
    assert flagged.status == S.FLAGGED and "no Cin7 account mapped" in flagged.reason
    assert cin7.purchases == {}
    mapping = FieldMapping.objects.create(
        integration=purchases, kind="item_account", source_value="PAPER", target_value="999"
    )
    (again,) = records_replay(record_ids=[flagged.pk])
    refused = again.records.get()
    assert refused.status == S.FLAGGED and "has no account 999" in refused.reason
    mapping.target_value = "310"
    mapping.save()
    (posted,) = records_replay(record_ids=[refused.pk])
    assert posted.synced == 1 and len(cin7.purchases) == 1
    assert cin7.violations == []
