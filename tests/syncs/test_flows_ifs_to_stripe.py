"""IFS Cloud → Stripe, end to end: the runner, both clients and both simulators over HTTP."""

from __future__ import annotations

import pytest

from audit.models import AuditRecord
from connections.models import Connection
from connections.providers.stripe import StripeProvider
from connections.sandbox.base import Served
from connections.sandbox.ifs import IfsSimulator
from connections.sandbox.stripe import StripeSimulator
from syncs.models import Cursor, Integration, SyncRun
from syncs.runner import Runner

S = AuditRecord.Status
CUSTOMERS = "CustomerHandling.svc/CustomerInfoSet"


@pytest.fixture
def ifs(ifs_sim: Served) -> IfsSimulator:
    sim: IfsSimulator = ifs_sim.app  # type: ignore[assignment]
    for n in range(1, 13):
        sim.put(
            CUSTOMERS,
            CustomerId=f"{10040 + n}",
            Name=f"Kund {n} AB",
            Email=f"ap{n}@kund.example",
            Address1=f"Storgatan {n}",
            City="Uppsala",
            ZipCode="75310",
            Country="SE" if n % 2 else "US",
            VatNo=f"SE5560{n:06d}01" if n % 2 else "12-3456789",
            ChangedDate=f"2026-11-{n:02d}T08:00:00Z",
        )
    return sim


@pytest.fixture
def customers(ifs_connection: Connection, stripe_connection: Connection) -> Integration:
    integ = Integration(
        name="IFS customers",
        slug="ifs-customers",
        flow="ifs_stripe.customers",
        source=ifs_connection,
        target=stripe_connection,
        settings={"page_size": 5},
    )
    integ.full_clean()
    integ.save()
    return integ


def run(integ: Integration) -> SyncRun:
    return Runner(Integration.objects.get(pk=integ.pk), trigger="manual").run()


def by_number(stripe: StripeSimulator) -> dict[str, dict]:
    return {c["metadata"]["ifs_customer"]: c for c in stripe.objects["customer"].values()}


def test_customers_sync_incrementally_over_several_pages(
    customers: Integration, ifs: IfsSimulator, stripe_sim: Served
) -> None:
    stripe: StripeSimulator = stripe_sim.app  # type: ignore[assignment]
    before = ifs.api_requests
    first = run(customers)
    # $metadata once, pages of 5, 5 and 2, and each customer's address by its navigation
    # (the header declares none: CustomerInfoAddresses)
    assert first.synced == 12 and ifs.api_requests - before == 1 + 3 + 12
    made = by_number(stripe)
    kund = made["10041"]
    assert kund["name"] == "Kund 1 AB" and kund["address"]["city"] == "Uppsala"
    assert [(t["type"], t["value"]) for t in kund["tax_ids"]["data"]] == [
        ("eu_vat", "SE556000000101")
    ]
    assert made["10042"]["tax_ids"]["data"] == []  # no known tax id type: kept in metadata
    assert made["10042"]["metadata"]["ifs_tax_id"] == "12-3456789"
    assert Cursor.objects.get(integration=customers).value == "2026-11-12T08:00:00"

    ifs.put(
        CUSTOMERS, CustomerId="10043", Name="Kund 3 Holding AB", ChangedDate="2026-11-20T09:30:00Z"
    )
    second = run(customers)
    # Only what changed since the cursor, less the 5-minute overlap, is read: the change, and
    # the last customer of the first run again (unchanged: nothing sent).
    assert (second.synced, second.skipped, second.done) == (1, 1, 2)
    assert by_number(stripe)["10043"]["name"] == "Kund 3 Holding AB"
    assert len(stripe.objects["customer"]) == 12
    assert Cursor.objects.get(integration=customers).value == "2026-11-20T09:30:00"


def test_a_lost_answer_on_create_does_not_make_a_second_customer(
    customers: Integration, ifs: IfsSimulator, stripe_sim: Served
) -> None:
    stripe: StripeSimulator = stripe_sim.app  # type: ignore[assignment]
    stripe.faults.add("lose_response", match="POST /v1/customers", count=2)
    run(customers)
    run(customers)
    assert sorted(by_number(stripe)) == [f"{10040 + n}" for n in range(1, 13)]
    assert len(stripe.objects["customer"]) == 12


INVOICES = "CustomerInvoiceHandling.svc/CustomerInvoiceSet"


def lines(*amounts: tuple[str, str]) -> list[dict]:
    return [
        {
            "LineNo": n,
            "Description": f"Item {n}",
            "NetAmount": net,
            "VatAmount": vat,
            "VatCode": "25",
        }
        for n, (net, vat) in enumerate(amounts, start=1)
    ]


@pytest.fixture
def invoices(
    customers: Integration,
    ifs: IfsSimulator,
    ifs_connection: Connection,
    stripe_connection: Connection,
) -> Integration:
    run(customers)
    ifs.put(
        INVOICES,
        Company="10",
        InvoiceId="5001",
        InvoiceNo="CI-5001",
        Identity="10041",
        Currency="SEK",
        DueDate="2027-01-31",
        Objstate="Posted",
        GrossAmount="1500.00",
        ChangedDate="2026-11-21T10:00:00Z",
        Lines=lines(("1000.00", "250.00"), ("200.00", "50.00")),
    )
    integ = Integration(
        name="IFS invoices",
        slug="ifs-invoices",
        flow="ifs_stripe.invoices",
        source=ifs_connection,
        target=stripe_connection,
    )
    integ.full_clean()
    integ.save()
    return integ


def stripe_invoice(stripe: StripeSimulator, number: str) -> dict:
    (found,) = [
        i for i in stripe.objects["invoice"].values() if i["metadata"].get("ifs_invoice") == number
    ]
    return found


def test_an_ifs_invoice_becomes_one_draft_even_when_an_answer_is_lost(
    invoices: Integration, ifs: IfsSimulator, stripe_sim: Served
) -> None:
    stripe: StripeSimulator = stripe_sim.app  # type: ignore[assignment]
    stripe.faults.add("lose_response", match="/add_lines", count=10)  # every try this run
    first = run(invoices)
    assert first.failed == 1 and len(stripe.objects["invoice"]) == 1  # made, answer lost
    stripe.faults.clear()
    second = run(invoices)
    assert second.synced == 1
    draft = stripe_invoice(stripe, "5001")
    assert draft["status"] == "draft" and draft["metadata"]["ifs_invoice_no"] == "CI-5001"
    assert sorted(line["amount"] for line in draft["lines"]["data"]) == [20000, 30000, 100000]
    assert draft["amount_due"] == 150000 and len(stripe.objects["invoice"]) == 1
    assert all(p["active"] for p in stripe.objects["price"].values())


def test_an_amount_change_archives_the_old_price(
    invoices: Integration, ifs: IfsSimulator, stripe_sim: Served
) -> None:
    stripe: StripeSimulator = stripe_sim.app  # type: ignore[assignment]
    run(invoices)
    old = {
        line["metadata"]["line"]: line["metadata"]["ifs_price"]
        for line in stripe_invoice(stripe, "5001")["lines"]["data"]
    }
    ifs.put(
        INVOICES,
        Company="10",
        InvoiceId="5001",
        ChangedDate="2026-11-21T11:00:00Z",
        GrossAmount="1625.00",
        Lines=lines(("1000.00", "250.00"), ("300.00", "75.00")),
    )
    changed = run(invoices)
    assert changed.synced == 1 and "old prices archived" in changed.records.get().reason
    draft = stripe_invoice(stripe, "5001")
    assert draft["amount_due"] == 100000 + 30000 + 32500
    assert stripe.objects["price"][old["2"]]["active"] is False  # prices are immutable
    assert stripe.objects["price"][old["vat:25"]]["active"] is False
    assert stripe.objects["price"][old["1"]]["active"] is True  # unchanged line kept
    assert len(stripe.objects["invoice"]) == 1


def test_a_change_after_stripe_finalized_the_invoice_is_flagged(
    invoices: Integration, ifs: IfsSimulator, stripe_sim: Served
) -> None:
    stripe: StripeSimulator = stripe_sim.app  # type: ignore[assignment]
    run(invoices)
    stripe_invoice(stripe, "5001")["status"] = "open"  # a person sent it from Stripe
    ifs.put(
        INVOICES,
        Company="10",
        InvoiceId="5001",
        ChangedDate="2026-11-21T12:00:00Z",
        GrossAmount="1125.00",
        Lines=lines(("900.00", "225.00")),
    )
    flagged = run(invoices).records.get()
    assert flagged.status == S.FLAGGED and "credit note" in flagged.reason


ORDERS = "CustomerOrderHandling.svc/CustomerOrderSet"


@pytest.fixture
def orders(ifs_connection: Connection, stripe_connection: Connection) -> Integration:
    integ = Integration(
        name="IFS orders",
        slug="ifs-orders",
        flow="ifs_stripe.orders",
        source=ifs_connection,
        target=stripe_connection,
        settings={"page_size": 2},
    )
    integ.full_clean()
    integ.save()
    return integ


def order(ifs: IfsSimulator, number: str, customer: str, when: str, state: str = "Released"):
    return ifs.put(ORDERS, OrderNo=number, CustomerNo=customer, Objstate=state, ChangedDate=when)


def test_orders_bring_their_customers_into_stripe_once(
    orders: Integration, customers: Integration, ifs: IfsSimulator, stripe_sim: Served
) -> None:
    stripe: StripeSimulator = stripe_sim.app  # type: ignore[assignment]
    order(ifs, "CO-1", "10041", "2026-11-25T08:00:00Z")
    order(ifs, "CO-2", "10041", "2026-11-25T08:01:00Z")  # the same customer again
    order(ifs, "CO-3", "10042", "2026-11-25T08:02:00Z", state="Cancelled")  # passed over
    order(ifs, "CO-4", "10044", "2026-11-25T08:03:00Z")
    order(ifs, "CO-5", "99999", "2026-11-25T08:04:00Z")  # IFS has no such customer
    first = run(orders)
    assert (first.synced, first.flagged) == (2, 1)
    assert sorted(by_number(stripe)) == ["10041", "10044"]
    made = by_number(stripe)["10044"]
    assert made["name"] == "Kund 4 AB" and made["email"] == "ap4@kund.example"
    flagged = first.records.get(status=S.FLAGGED)
    assert "CO-5" in flagged.reason and "99999" in flagged.reason
    assert Cursor.objects.get(integration=orders, stream="orders").value == "2026-11-25T08:04:00"

    # The customers flow finds them made (same ledger key): nothing is created twice.
    full = run(customers)
    assert full.synced == 10 and len(stripe.objects["customer"]) == 12

    # A new order of a customer Stripe has already needs nothing and adds no audit row (the
    # overlap reads the flagged order again: seen again, not a second review item).
    order(ifs, "CO-6", "10044", "2026-11-26T09:00:00Z")
    quiet = run(orders)
    assert (quiet.synced, quiet.flagged) == (0, 0) and len(stripe.objects["customer"]) == 12
    assert not quiet.records.filter(source_key="10044").exists()
    assert AuditRecord.objects.filter(status=S.FLAGGED, source_key="99999").count() == 1
    assert Cursor.objects.get(integration=orders, stream="orders").value == "2026-11-26T09:00:00"


def test_an_order_and_the_customer_run_racing_make_one_customer(
    orders: Integration,
    customers: Integration,
    ifs: IfsSimulator,
    stripe_sim: Served,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The order flow's view of Stripe is stale (the customer run made the customer after the
    order flow listed Stripe's customers): the shared ledger key stops a second create."""
    stripe: StripeSimulator = stripe_sim.app  # type: ignore[assignment]
    order(ifs, "CO-7", "10045", "2026-11-27T08:00:00Z")
    run(customers)
    stale = {k: v for k, v in by_number(stripe).items() if k != "10045"}
    monkeypatch.setattr(StripeProvider, "index_customers", lambda self, key: stale)
    raced = run(orders)
    assert (raced.duplicate, raced.synced) == (1, 0)
    assert len(stripe.objects["customer"]) == 12


def test_a_key_rotated_mid_run_fails_nothing(
    transactional_db: None,
    customers: Integration,
    ifs: IfsSimulator,
    stripe_sim: Served,
    stripe_connection: Connection,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The schedule rotates the Stripe key while a run is under way, and the old key expires
    before the run ends: the run's clients (four load threads) pick up the new key on their
    next 401."""
    from connections.services import key_rotate
    from syncs.flows.ifs_stripe_customers import IfsCustomersToStripe

    stripe: StripeSimulator = stripe_sim.app  # type: ignore[assignment]
    Connection.objects.filter(pk=stripe_connection.pk).update(
        settings={**stripe_connection.settings, "rotation_grace_minutes": 1, "max_in_flight": 4}
    )
    original = IfsCustomersToStripe.extract
    rotated: list[str] = []

    def extract(self, ctx):  # type: ignore[no-untyped-def]
        for n, record in enumerate(original(self, ctx)):
            if n == 6:  # half the customers are on their way with the old key
                elsewhere = Connection.objects.get(pk=stripe_connection.pk)  # another worker
                rotated.append(key_rotate(connection=elsewhere).status)
                now = stripe.clock()
                stripe.clock = lambda now=now: now + 120  # …which has expired by now
            yield record

    monkeypatch.setattr(IfsCustomersToStripe, "extract", extract)
    old_key = stripe_connection.credentials["api_key"]
    done = run(customers)
    assert rotated == ["done"]
    assert (done.status, done.synced, done.failed) == ("succeeded", 12, 0)
    assert len(stripe.objects["customer"]) == 12
    assert stripe._authenticate(f"Bearer {old_key}") is not None  # revoked
    assert any("using its successor" in r.message for r in caplog.records)
    stripe_connection.refresh_from_db()
    assert stripe_connection.credentials["api_key"] == stripe.api_key != old_key


def invoice(ifs: IfsSimulator, number: int, state: str, gross: str, *amounts: tuple[str, str]):
    return ifs.put(
        INVOICES,
        Company="10",
        InvoiceId=number,
        InvoiceNo=f"CI-{number}",
        Identity="10041",
        Currency="SEK",
        DueDate="2027-01-31",
        Objstate=state,
        GrossAmount=gross,
        ChangedDate=f"2026-11-22T{number % 24:02d}:00:00Z",
        Lines=lines(*amounts),
    )


def test_only_invoices_a_customer_can_pay_go_to_stripe(
    invoices: Integration, ifs: IfsSimulator, stripe_sim: Served
) -> None:
    stripe: StripeSimulator = stripe_sim.app  # type: ignore[assignment]
    invoice(ifs, 6001, "Preliminary", "125.00", ("100.00", "25.00"))
    invoice(ifs, 6002, "Cancelled", "125.00", ("100.00", "25.00"))
    invoice(ifs, 6003, "PaidPosted", "125.00", ("100.00", "25.00"))
    invoice(ifs, 6004, "PartlyPaidPosted", "125.00", ("100.00", "25.00"))
    done = run(invoices)
    sent = {i["metadata"]["ifs_invoice"] for i in stripe.objects["invoice"].values()}
    assert sent == {"5001", "6004"}
    reasons = {r.source_key: r.reason for r in done.records.filter(status=S.SKIPPED)}
    assert "is Preliminary: only invoices that are Posted or PartlyPaidPosted" in reasons["10/6001"]
    assert "is Cancelled" in reasons["10/6002"] and "is PaidPosted" in reasons["10/6003"]
    # Cancelled in IFS after it went to Stripe: a person voids it there.
    invoice(ifs, 6004, "Cancelled", "125.00", ("100.00", "25.00"))
    ifs.put(INVOICES, Company="10", InvoiceId=6004, ChangedDate="2026-11-23T09:00:00Z")
    flagged = run(invoices).records.get(source_key="10/6004")
    assert flagged.status == S.FLAGGED and "void or delete it in Stripe" in flagged.reason


def test_the_stripe_total_equals_the_ifs_gross_to_the_cent_or_nothing_is_sent(
    invoices: Integration, ifs: IfsSimulator, stripe_sim: Served
) -> None:
    stripe: StripeSimulator = stripe_sim.app  # type: ignore[assignment]
    invoice(ifs, 6101, "Posted", "1234.57", ("987.65", "246.91"))  # 1234.56: a cent short
    invoice(ifs, 6102, "Posted", "1234.56", ("987.65", "246.91"))
    done = run(invoices)
    flagged = done.records.get(source_key="10/6101")
    assert flagged.status == S.FLAGGED and "add up to 123456" in flagged.reason
    assert "123457" in flagged.reason
    assert stripe_invoice(stripe, "6102")["amount_due"] == 123456
    assert not [
        i for i in stripe.objects["invoice"].values() if i["metadata"]["ifs_invoice"] == "6101"
    ]


@pytest.mark.parametrize("reading", ["expand allowed", "navigation path", "lines set"])
def test_invoices_and_their_lines_arrive_under_every_reading_of_the_contract(
    invoices: Integration,
    ifs: IfsSimulator,
    stripe_sim: Served,
    ifs_connection: Connection,
    reading: str,
) -> None:
    stripe: StripeSimulator = stripe_sim.app  # type: ignore[assignment]
    ifs.expand_collections = reading == "expand allowed"
    if reading == "lines set":
        ifs.hide_navigations = True
        Connection.objects.filter(pk=ifs_connection.pk).update(
            settings={
                **ifs_connection.settings,
                "entities": {"invoice_lines": "CustomerInvoiceHandling.svc/CustomerInvoiceLineSet"},
            }
        )
    for n in range(6201, 6211):
        invoice(ifs, n, "Posted", "1500.00", ("1000.00", "250.00"), ("200.00", "50.00"))
    first = run(invoices)
    assert (first.synced, first.flagged, first.failed) == (11, 0, 0)
    for n in range(6201, 6211):
        assert stripe_invoice(stripe, str(n))["amount_due"] == 150000
    posts = len(stripe.objects["invoice"])
    again = run(invoices)  # an incremental run: the overlap reads the last ones again
    assert again.synced == 0 and again.failed == 0 and len(stripe.objects["invoice"]) == posts


def test_no_way_to_an_invoice_s_lines_fails_the_run_in_plain_words(
    invoices: Integration, ifs: IfsSimulator
) -> None:
    ifs.hide_navigations = True
    done = run(invoices)
    assert done.status == "failed"
    assert "cannot tell where the lines of an IFS invoice are" in done.error_summary
    assert not AuditRecord.objects.filter(reason__contains="no lines").exists()
