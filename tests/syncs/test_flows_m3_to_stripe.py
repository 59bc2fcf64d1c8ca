"""CloudSuite → Stripe, end to end: the runner, both clients and both simulators over HTTP."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from audit.models import AuditRecord, PostingLedger
from connections.models import Connection
from connections.sandbox.base import Served
from connections.sandbox.m3 import M3Simulator
from connections.sandbox.stripe import StripeSimulator
from syncs.flows import Flag, Mappings, SourceRecord
from syncs.flows.m3_stripe_invoices import M3InvoicesToStripe
from syncs.models import Integration, SyncRun
from syncs.runner import Runner

S = AuditRecord.Status


@pytest.fixture
def m3(m3_sim: Served) -> M3Simulator:
    sim: M3Simulator = m3_sim.app  # type: ignore[assignment]
    sim.state.put_customer(
        "C100",
        CUNM="Acme Stores",
        CUCD="EUR",
        MAIL="ap@acme.test",
        CUA1="1 Main St",
        TOWN="Dublin",
        CSCD="IE",
    )
    sim.state.put_customer("C200", CUNM="Birch Ltd", CUCD="GBP")
    sim.state.put_customer("C300", CUNM="Cedar AB", CUCD="SEK")
    sim.state.add_invoice(
        "C100", "9001", "1210.00", "EUR", vat="210.00", ivdt="20261101", dudt="20271231"
    )
    sim.state.add_invoice("C200", "9002", "500.00", "GBP", ivdt="20261102", dudt="20271231")
    sim.state.add_invoice("C999", "9003", "80.00", "EUR", ivdt="20261103", dudt="20271231")
    return sim


@pytest.fixture
def stripe(stripe_sim: Served) -> StripeSimulator:
    return stripe_sim.app  # type: ignore[return-value]


def integration(flow: str, source: Connection, target: Connection, **settings: Any) -> Integration:
    integ = Integration(
        name=flow,
        slug=flow.replace(".", "-"),
        flow=flow,
        source=source,
        target=target,
        settings=settings,
    )
    integ.full_clean()
    integ.save()
    return integ


def run(integ: Integration) -> SyncRun:
    return Runner(Integration.objects.get(pk=integ.pk), trigger="manual").run()


@pytest.fixture
def customers(m3_connection: Connection, stripe_connection: Connection) -> Integration:
    return integration("m3_stripe.customers", m3_connection, stripe_connection)


@pytest.fixture
def invoices(m3_connection: Connection, stripe_connection: Connection) -> Integration:
    return integration("m3_stripe.invoices", m3_connection, stripe_connection)


def sync_customers_then_one_arrives(customers: Integration, m3: M3Simulator) -> None:
    """The customers reach Stripe; then C999 is added in CloudSuite, not yet synced."""
    run(customers)
    m3.state.put_customer("C999", CUNM="Late Customer", CUCD="EUR")


def by_number(stripe: StripeSimulator) -> dict[str, dict[str, Any]]:
    return {c["metadata"]["m3_customer"]: c for c in stripe.objects["customer"].values()}


def test_customers_are_created_then_only_changes_are_sent(
    customers: Integration,
    m3: M3Simulator,
    stripe: StripeSimulator,
) -> None:
    first = run(customers)
    assert (first.status, first.synced) == ("succeeded", 3)
    acme = by_number(stripe)["C100"]
    assert (acme["name"], acme["email"], acme["address"]["city"]) == (
        "Acme Stores",
        "ap@acme.test",
        "Dublin",
    )

    second = run(customers)  # within the overlap window: read again, nothing to send
    assert {r.status for r in second.records.all()} == {S.SKIPPED}

    m3.state.put_customer("C200", CUNM="Birch Holdings Ltd")
    third = run(customers)
    changed = third.records.get(source_key="C200")
    assert changed.status == S.SYNCED and changed.reason == "Updated in Stripe: name."
    assert changed.sent_payload["update"] == {"name": "Birch Holdings Ltd"}
    assert by_number(stripe)["C200"]["name"] == "Birch Holdings Ltd"
    assert len(stripe.objects["customer"]) == 3


def test_open_invoices_become_stripe_invoices_once(
    customers: Integration,
    invoices: Integration,
    m3: M3Simulator,
    stripe: StripeSimulator,
    admin_client: Any,
) -> None:
    sync_customers_then_one_arrives(customers, m3)
    result = run(invoices)
    outcome = {r.source_key: r.status for r in result.records.all()}
    assert outcome == {
        "AAA/2026/9001": S.SYNCED,
        "AAA/2026/9002": S.SYNCED,
        "AAA/2026/9003": S.FAILED,  # its customer is not in Stripe yet: tried again later
    }
    waiting = result.records.get(source_key="AAA/2026/9003")
    assert "Customer C999 is not in Stripe yet" in waiting.reason and waiting.retryable
    (acme,) = [
        i for i in stripe.objects["invoice"].values() if i["metadata"]["m3_invoice"] == "9001"
    ]
    assert acme["status"] == "open" and acme["currency"] == "eur"
    assert [line["amount"] for line in acme["lines"]["data"]] == [100000, 21000]
    sent = result.records.get(source_key="AAA/2026/9001")
    page = admin_client.get(f"/admin/audit/auditrecord/{sent.pk}/change/").content.decode()
    lines = page.split('id="mlc-sent-lines"', 1)[1].split("</table>", 1)[0]
    assert "Sent to Stripe" in lines and "1,000.00 EUR" in lines and "210.00 EUR" in lines
    assert acme["customer"] == by_number(stripe)["C100"]["id"]
    assert acme["metadata"]["m3_amount"] == "1210.00"

    again = run(invoices)  # confirmed invoices are not even re-read
    assert again.records.filter(status=S.SYNCED).count() == 0
    assert len(stripe.objects["invoice"]) == 2

    run(customers)  # the new customer reaches Stripe
    posted = run(invoices).records.get(source_key="AAA/2026/9003")
    assert posted.status == S.SYNCED and len(stripe.objects["invoice"]) == 3
    waiting.refresh_from_db()  # no longer in the review queue: it was posted
    assert waiting.resolved_at and waiting.resolution == f"Posted later (record #{posted.pk})"


def test_zero_decimal_currency_is_exact(
    customers: Integration,
    invoices: Integration,
    m3: M3Simulator,
    stripe: StripeSimulator,
) -> None:
    m3.state.put_customer("C400", CUNM="Kyoto KK", CUCD="JPY")
    m3.state.add_invoice("C400", "9004", "12000", "JPY", ivdt="20261104", dudt="20271231")
    m3.state.add_invoice("C400", "9005", "12000.50", "JPY", ivdt="20261104", dudt="20271231")
    run(customers)
    result = run(invoices)
    (yen,) = [
        i for i in stripe.objects["invoice"].values() if i["metadata"]["m3_invoice"] == "9004"
    ]
    assert yen["amount_due"] == 12000
    flagged = result.records.get(source_key="AAA/2026/9005")
    assert flagged.status == S.FLAGGED and "more decimals than the currency" in flagged.reason


def test_a_lost_response_is_retried_safely_with_the_same_idempotency_key(
    customers: Integration,
    invoices: Integration,
    m3: M3Simulator,
    stripe: StripeSimulator,
) -> None:
    sync_customers_then_one_arrives(customers, m3)
    stripe.faults.add("lose_response", match="/finalize")
    result = run(invoices)
    assert result.synced == 2 and len(stripe.objects["invoice"]) == 2
    assert all(i["status"] == "open" for i in stripe.objects["invoice"].values())


def test_an_invoice_interrupted_mid_create_is_completed_by_the_next_run(
    customers: Integration,
    invoices: Integration,
    m3: M3Simulator,
    stripe: StripeSimulator,
) -> None:
    sync_customers_then_one_arrives(customers, m3)
    stripe.faults.add("lose_response", match="/finalize", count=50)  # every attempt, both
    first = run(invoices)
    interrupted = first.records.filter(status=S.FAILED, retryable=True)
    assert interrupted.exclude(source_key="AAA/2026/9003").count() == 2  # 9003 waits its customer
    assert PostingLedger.objects.filter(target="stripe.invoice", state="pending").count() == 2
    stripe.faults.clear()
    second = run(invoices)
    recovered = second.records.filter(status=S.SYNCED)
    assert recovered.count() == 2
    assert all("not posted again" in r.reason for r in recovered)
    assert len(stripe.objects["invoice"]) == 2
    assert all(i["status"] == "open" for i in stripe.objects["invoice"].values())


def test_token_expiry_and_a_429_storm_mid_run(
    customers: Integration,
    m3: M3Simulator,
    m3_sim: Served,
) -> None:
    m3.token_lifetime = 1  # every token is stale by the next call
    m3.faults.add("status", status=429, retry_after=0, count=4, match="CRS610MI")
    result = run(customers)
    assert (result.status, result.synced) == ("succeeded", 3)
    assert m3.token_requests >= 1


def test_amounts_round_trip_exactly() -> None:
    from syncs.money import from_minor, to_minor

    assert to_minor(Decimal("1210.10"), "EUR") == 121010
    assert from_minor(121010, "eur") == Decimal("1210.10")
    assert to_minor(Decimal("1.234"), "KWD") == 1234 and from_minor(5, "JPY") == Decimal("5")


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"VTAM": None}, "no VAT amount (VTAM)"),
        ({"CUAM": ""}, "no amount (CUAM)"),
        ({"CUAM": "12,50"}, "no amount (CUAM)"),
        ({"DUDT": "2026-13-45"}, "no due date (DUDT)"),
    ],
)
def test_an_invoice_with_missing_amounts_is_flagged_not_crashed(
    change: dict[str, Any], said: str
) -> None:
    m3 = {
        "CINO": "9001",
        "INYR": "2026",
        "DIVI": "AAA",
        "CUNO": "C100",
        "CUCD": "EUR",
        "CUAM": "1210.00",
        "VTAM": "210.00",
        "DUDT": "20271231",
        **change,
    }
    record = SourceRecord("AAA/2026/9001", {"m3": m3, "as_of": 0, "stripe_customer": "cus_1"})
    result = M3InvoicesToStripe().map(record, Mappings())
    assert (
        isinstance(result, Flag)
        and said in result.reason
        and "check it in CloudSuite" in result.reason
    )


@pytest.mark.parametrize("unit", ["epoch_ms", "datetime_ms"])
def test_a_changed_customer_is_never_missed_whatever_lmts_holds(
    m3_sim: Served, stripe: StripeSimulator, customers: Integration, unit: str
) -> None:
    """LMTS's unit is not published: read as epoch milliseconds, a change is found whether
    CloudSuite writes epoch milliseconds or yyyyMMddHHmmssSSS (then every run reads all, and
    sends only what changed)."""
    m3: M3Simulator = m3_sim.app  # type: ignore[assignment]
    m3.state.lmts_unit = unit
    m3.state.put_customer("C100", CUNM="Acme Stores", CUCD="EUR")
    m3.state.put_customer("C200", CUNM="Birch Ltd", CUCD="GBP")
    assert len(str(m3.state.customers["C100"]["LMTS"])) == (13 if unit == "epoch_ms" else 17)
    assert run(customers).synced == 2
    m3.state.put_customer("C200", CUNM="Birch Holdings Ltd")
    m3.state.put_customer("C300", CUNM="Cedar AB", CUCD="SEK")
    again = run(customers)
    statuses = {r.source_key: r.status for r in again.records.all()}
    assert statuses["C200"] == statuses["C300"] == S.SYNCED
    assert statuses.get("C100", S.SKIPPED) == S.SKIPPED  # unchanged: nothing sent
    assert by_number(stripe)["C200"]["name"] == "Birch Holdings Ltd"
    assert len(stripe.objects["customer"]) == 3
