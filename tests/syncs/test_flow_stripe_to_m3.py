"""Stripe → CloudSuite receipts, end to end: signed webhooks into a live server, polling, the
ledger, and the M3 and Stripe simulators over HTTP."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from audit.models import AuditRecord, PostingLedger
from connections.models import Connection
from connections.sandbox.base import Served
from connections.sandbox.m3 import M3Simulator
from connections.sandbox.stripe import StripeSimulator
from syncs.models import FieldMapping, Integration, SyncRun, WebhookEvent
from syncs.runner import Runner
from syncs.services import records_replay

S = AuditRecord.Status
pytestmark = pytest.mark.django_db(transaction=True)


@dataclass
class World:
    m3: M3Simulator
    stripe: StripeSimulator
    payments: Integration

    def invoice(self, cino: str) -> dict[str, Any]:
        (found,) = [
            i
            for i in self.stripe.objects["invoice"].values()
            if i["metadata"]["m3_invoice"] == cino
        ]
        return found

    def pay(self, cino: str, amount: int | None = None) -> dict[str, Any]:
        return self.stripe.act(lambda: self.stripe.pay_invoice(self.invoice(cino)["id"], amount))

    def charge_for(self, cino: str) -> dict[str, Any]:
        (payment,) = [
            p
            for p in self.stripe.objects["invoice_payment"].values()
            if p["invoice"] == self.invoice(cino)["id"]
        ][:1]
        intent = self.stripe.objects["payment_intent"][payment["payment"]["payment_intent"]]
        return self.stripe.objects["charge"][intent["latest_charge"]]

    def poll(self) -> SyncRun:
        integ = Integration.objects.get(pk=self.payments.pk)
        return Runner(integ, trigger=SyncRun.Trigger.SCHEDULE).run()

    def receipts(self) -> list[dict[str, Any]]:
        return self.m3.state.receipts()


def make(flow: str, source: Connection, target: Connection) -> Integration:
    integ = Integration(
        name=flow, slug=flow.replace(".", "-"), flow=flow, source=source, target=target
    )
    integ.full_clean()
    integ.save()
    return integ


@pytest.fixture
def world(
    m3_sim: Served,
    stripe_sim: Served,
    m3_connection: Connection,
    stripe_connection: Connection,
    live_server: Any,
) -> World:
    m3: M3Simulator = m3_sim.app  # type: ignore[assignment]
    stripe: StripeSimulator = stripe_sim.app  # type: ignore[assignment]
    m3.state.put_customer("C100", CUNM="Acme Stores", CUCD="EUR")
    m3.state.put_account("1930", "Bank EUR")
    m3.state.put_account("FEE", "Card fees (the charge code FEE)")
    m3.state.add_invoice(
        "C100", "9001", "1210.00", "EUR", vat="210.00", ivdt="20261101", dudt="20271231"
    )
    m3.state.add_invoice("C100", "9002", "300.00", "EUR", ivdt="20261102", dudt="20271231")
    for flow in ("m3_stripe.customers", "m3_stripe.invoices"):
        Runner(make(flow, m3_connection, stripe_connection), trigger="manual").run()
    payments = make("stripe_m3.payments", stripe_connection, m3_connection)
    FieldMapping.objects.create(
        integration=payments,
        kind="gl_account",
        source_value="stripe_receipts",
        target_value="1930;100",
    )
    FieldMapping.objects.create(
        integration=payments, kind="charge_code", source_value="stripe_fees", target_value="FEE"
    )
    stripe.webhooks.endpoints.append(
        {
            "url": f"{live_server.url}/webhooks/stripe/{stripe_connection.slug}/",
            "secret": stripe_connection.credentials["webhook_secret"],
        }
    )
    return World(m3, stripe, payments)


def test_a_payment_webhook_posts_one_receipt_with_its_gl_allocation(world: World) -> None:
    world.pay("9001")
    (receipt,) = world.receipts()
    assert (receipt["CINO"], receipt["CUAM"]) == ("9001", Decimal("-1210.00"))
    posting, fee = world.m3.state.gl
    assert posting["AIT"][:2] == ["1930", "100"] and posting["amount"] == Decimal("1210.00")
    assert fee["AIT"] == ["FEE"] and fee["amount"] == Decimal("35.39")  # 2.9% + 0.30
    assert world.m3.state.invoice("C100", "9001")["RECO"] == 9
    # invoice.paid, charge.succeeded and payment_intent.succeeded: one payment, posted once.
    assert WebhookEvent.objects.filter(processed=True).count() == 3
    records = AuditRecord.objects.filter(integration=world.payments)
    assert records.filter(status=S.SYNCED, seen_via="webhook").count() == 1
    assert records.filter(status=S.DUPLICATE).count() == 2


def test_duplicate_and_out_of_order_deliveries_post_once(world: World) -> None:
    world.stripe.webhooks.duplicate = True
    world.stripe.webhooks.reorder = True
    world.pay("9001")
    assert len(world.receipts()) == 1
    assert WebhookEvent.objects.count() == 3  # duplicates acknowledged, not stored twice
    assert [s for _, s in world.stripe.webhooks.delivered] == [200] * 6


def test_a_missed_webhook_is_caught_by_polling(world: World) -> None:
    world.stripe.webhooks.drop_next = 100
    world.pay("9001")
    assert world.receipts() == [] and WebhookEvent.objects.count() == 0
    run = world.poll()
    assert run.synced == 1 and len(world.receipts()) == 1
    assert run.records.get(status=S.SYNCED).seen_via == "poll"
    again = world.poll()  # within the overlap window: nothing posted, nothing re-audited
    assert again.done == 0 and len(world.receipts()) == 1


def test_partial_payment_then_refund(world: World) -> None:
    world.pay("9001", amount=50000)  # 500.00 of 1210.00
    (receipt,) = world.receipts()
    assert receipt["CUAM"] == Decimal("-500.00")
    record = AuditRecord.objects.get(integration=world.payments, status=S.SYNCED)
    assert "partial: 710.00 EUR still open" in record.reason
    assert world.m3.state.open_amount(world.m3.state.invoice("C100", "9001")) == Decimal("710.00")

    charge = world.charge_for("9001")
    world.stripe.act(lambda: world.stripe.refund(charge["id"], 20000))
    refund = world.receipts()[-1]
    assert refund["CUAM"] == Decimal("200.00") and len(world.receipts()) == 2
    assert world.m3.state.open_amount(world.m3.state.invoice("C100", "9001")) == Decimal("910.00")


@pytest.mark.parametrize(
    ("metadata", "currency", "amount", "reason"),
    [
        ({}, "eur", 1000, "not linked to a CloudSuite invoice"),
        (
            {
                "m3_invoice": "9002",
                "m3_invoice_year": "2026",
                "m3_customer": "C100",
                "m3_currency": "EUR",
                "m3_amount": "300.00",
            },
            "usd",
            1000,
            "which is in EUR",
        ),
        (
            {
                "m3_invoice": "9002",
                "m3_invoice_year": "2026",
                "m3_customer": "C100",
                "m3_currency": "EUR",
                "m3_amount": "300.00",
            },
            "eur",
            40000,
            "Overpayment",
        ),
    ],
)
def test_payments_that_cannot_be_posted_are_flagged(
    world: World,
    metadata: dict,
    currency: str,
    amount: int,
    reason: str,
) -> None:
    world.stripe.act(
        lambda: world.stripe.charge(amount=amount, currency=currency, metadata=metadata)
    )
    flagged = AuditRecord.objects.filter(integration=world.payments, status=S.FLAGGED)
    assert flagged.exists() and reason in flagged.first().reason
    assert world.receipts() == []


def test_a_dispute_is_flagged_for_review(world: World) -> None:
    world.pay("9002")
    world.stripe.act(lambda: world.stripe.dispute(world.charge_for("9002")["id"]))
    flagged = AuditRecord.objects.get(integration=world.payments, status=S.FLAGGED)
    assert "disputed (invoice 9002)" in flagged.reason and len(world.receipts()) == 1


def test_missing_gl_mapping_is_flagged_then_replayed_once(world: World) -> None:
    FieldMapping.objects.filter(source_value="stripe_receipts").delete()
    world.pay("9002")
    flagged = AuditRecord.objects.filter(integration=world.payments, status=S.FLAGGED)
    (item,) = flagged  # three announcements of one payment: one review item, seen three times
    assert item.times_seen == 3 and "No GL account is mapped" in item.reason
    FieldMapping.objects.create(
        integration=world.payments,
        kind="gl_account",
        source_value="stripe_receipts:EUR",
        target_value="1930",
    )
    ids = list(flagged.values_list("pk", flat=True))
    records_replay(record_ids=ids)
    records_replay(record_ids=ids)  # clicked twice
    assert len(world.receipts()) == 1 and world.m3.state.gl[0]["AIT"][0] == "1930"


def test_a_lost_m3_response_after_posting_is_completed_by_the_next_poll(world: World) -> None:
    world.stripe.webhooks.drop_next = 100
    world.m3.faults.add("lose_response", match="ARS040MI/ControlBatch")
    world.pay("9001")
    first = world.poll()
    failed = first.records.get(status=S.FAILED)
    assert failed.retryable and len(world.receipts()) == 1  # M3 did post it; the answer was lost
    assert PostingLedger.objects.get(target="m3.receipt").state == "pending"
    second = world.poll()
    done = second.records.get(status=S.SYNCED)
    assert done.reason.startswith("Found in the target")  # the batch was controlled: posted
    assert len(world.receipts()) == 1 and len(world.m3.state.batches) == 1
    assert PostingLedger.objects.get(target="m3.receipt").state == "confirmed"


def test_a_second_announcement_of_a_payment_completes_an_interrupted_post(world: World) -> None:
    world.m3.faults.add("lose_response", match="ARS040MI/ControlBatch")
    world.pay("9001")  # charge.succeeded fails on the lost answer; the next event completes it
    records = AuditRecord.objects.filter(integration=world.payments)
    assert records.filter(status=S.FAILED, retryable=True).count() == 1
    assert records.filter(status=S.SYNCED).count() == 1
    assert len(world.receipts()) == 1 and len(world.m3.state.batches) == 1


def test_collections_show_what_stripe_collected_per_invoice(
    world: World, admin_client: Any
) -> None:
    world.pay("9001", amount=50000)
    posted = AuditRecord.objects.get(integration=world.payments, status=S.SYNCED)
    summary = (posted.amount, posted.currency, posted.party, posted.document)
    assert summary == (Decimal("500.00"), "EUR", "C100", "9001")  # what lists total and find
    page = admin_client.get("/admin/audit/collection/").content.decode()
    assert ">9001<" in page and "500.00 EUR" in page and ">PBID 70" in page
    assert ">9002<" not in page  # not paid
    found = admin_client.get("/admin/audit/collection/?q=invoice+9001").content.decode()
    assert "500.00 EUR" in found
    assert posted.party_name  # the customer's name, as Stripe's invoice carries it
    for term in ("C100", posted.party_name, "500", "500.00", posted.source_key):
        page = admin_client.get("/admin/audit/collection/", {"q": term}).content.decode()
        assert "500.00 EUR" in page, term
    assert "500.00 EUR" not in admin_client.get("/admin/audit/collection/?q=499").content.decode()
    totals = page.split('id="mlc-totals"', 1)[1].split("</table>", 1)[0]
    assert '<td class="num">500.00 EUR</td>' in totals  # as the rows show it
    record = admin_client.get(f"/admin/audit/collection/{posted.pk}/change/").content.decode()
    posting = record.split('id="mlc-posting"', 1)[1].split("</table>", 1)[0]
    rows = posting.split("<tbody>", 1)[1].split("</tbody>", 1)[0].split("</tr>")
    assert "1930" in rows[0] and "Customer C100, invoice 9001" in rows[1]  # bank, receivable
    FieldMapping.objects.filter(source_value="stripe_receipts").update(note="Stripe clearing")
    named = admin_client.get(f"/admin/audit/collection/{posted.pk}/change/").content.decode()
    first = named.split('id="mlc-posting"', 1)[1].split("</tr>", 2)[1]
    assert "1930;100" in first and "Stripe clearing" in first  # the mapping's note names it
    assert rows[0].count("500.00 EUR") == 1 and rows[1].count("500.00 EUR") == 1


def test_a_copied_payments_integration_never_posts_a_payment_twice(world: World) -> None:
    original = world.payments
    copy = Integration.objects.create(
        name="Copy", slug="copy", flow=original.flow, source=original.source, target=original.target
    )
    for mapping in original.mappings.all():
        copy.mappings.create(
            kind=mapping.kind, source_value=mapping.source_value, target_value=mapping.target_value
        )
    for cino in ("9001", "9002"):
        world.pay(cino)  # each webhook feeds both integrations
    assert sorted(r["CINO"] for r in world.receipts()) == ["9001", "9002"]
    assert len(world.m3.state.batches) == 2 and len(world.m3.state.gl) == 4  # 2 lines, 2 fees
    both = AuditRecord.objects.filter(integration__in=[original, copy])
    assert both.filter(status=S.SYNCED).count() == 2  # whichever integration got there first
    assert both.filter(status=S.DUPLICATE).count() >= 2  # the other one saw each as posted
    Runner(Integration.objects.get(pk=copy.pk), trigger="schedule").run()  # its poll, too
    assert len(world.receipts()) == 2


def fees(world: World) -> list[dict[str, Any]]:
    return [g for g in world.m3.state.gl if g["AIT"] == ["FEE"]]


def two_requests_per_receipt(world: World) -> None:
    target = world.payments.target
    target.settings = {**target.settings, "receipt_requests": 2}
    target.save()


def test_a_lost_answer_to_the_one_receipt_request_is_found_posted(world: World) -> None:
    world.stripe.webhooks.drop_next = 100
    world.m3.faults.add("lose_response", match="ARS040MI/ControlBatch")
    world.pay("9001")
    first = world.poll()
    assert first.records.get(status=S.FAILED).retryable
    assert len(world.receipts()) == 1  # posted: only the answer was lost
    done = world.poll().records.get(status=S.SYNCED)
    assert done.reason.startswith("Found in the target after an interrupted attempt")
    assert len(world.receipts()) == 1 and len(fees(world)) == 1
    assert len(world.m3.state.batches) == 1


def test_a_fee_refused_in_a_controlled_batch_goes_to_the_review_queue(world: World) -> None:
    FieldMapping.objects.filter(source_value="stripe_fees").update(target_value="NOPE")
    world.pay("9001")
    (item,) = AuditRecord.objects.filter(integration=world.payments, status=S.FLAGGED)
    assert "was posted in CloudSuite, but CloudSuite refused part of it" in item.reason
    assert "Charge code NOPE does not exist" in item.reason
    assert len(world.receipts()) == 1 and fees(world) == []
    entry = PostingLedger.objects.get(target="m3.receipt")
    assert entry.state == PostingLedger.State.CONFIRMED  # never posted again
    (replayed,) = records_replay(record_ids=[item.pk])
    assert replayed.records.get().status == S.DUPLICATE and len(world.receipts()) == 1


@pytest.mark.parametrize("step", ["AddBatchLine", "AddBatchCharge"])
def test_a_fee_is_never_charged_twice_after_a_lost_answer(world: World, step: str) -> None:
    two_requests_per_receipt(world)
    world.stripe.webhooks.drop_next = 100
    world.m3.faults.add("lose_response", match=f"ARS040MI/{step}")
    world.pay("9001")
    first = world.poll()
    assert first.records.get(status=S.FAILED).retryable
    assert world.receipts() == []  # the batch was never controlled: nothing posted yet
    second = world.poll()
    done = second.records.get(status=S.SYNCED)
    assert "should be deleted there (ARS040)" in done.reason
    (receipt,) = world.receipts()
    assert receipt["CINO"] == "9001" and len(fees(world)) == 1  # one receipt, one fee
    batches = world.m3.state.batches
    assert sorted(b["status"] for b in batches.values()) == ["entered", "updated"]
    (left,) = [b for b in batches.values() if b["status"] == "entered"]
    assert str(left["PBID"]) in done.reason  # the remnant to delete is named
    assert world.poll().done == 0 and len(fees(world)) == 1


def test_an_interrupted_batch_without_a_fee_is_completed_in_place(world: World) -> None:
    two_requests_per_receipt(world)
    FieldMapping.objects.filter(source_value="stripe_fees").delete()
    world.stripe.webhooks.drop_next = 100
    world.m3.faults.add("lose_response", match="ARS040MI/AddBatchLine")
    world.pay("9001")
    world.poll()
    done = world.poll().records.get(status=S.SYNCED)
    assert done.reason.startswith("Completed after an interrupted attempt")
    assert len(world.receipts()) == 1 and len(world.m3.state.batches) == 1


def test_a_quiet_poll_costs_a_handful_of_requests(world: World) -> None:
    for conn in (world.payments.source, world.payments.target):  # pacing is not what's tested
        conn.settings = {**conn.settings, "rate_limit_per_minute": 600_000}
        conn.save()
    for n in range(3, 13):
        world.m3.state.add_invoice("C100", f"90{n:02d}", "100.00", "EUR", dudt="20271231")
    Runner(Integration.objects.get(slug="m3_stripe-invoices"), trigger="manual").run()
    world.stripe.webhooks.drop_next = 1000  # every announcement is missed
    for n in range(1, 13):
        world.pay(f"90{n:02d}")
    first = world.poll()
    assert first.synced == 12 and len(world.receipts()) == 12
    before = world.stripe.api_requests
    quiet = world.poll()  # the same events again (the overlap): nothing to post
    assert quiet.done == 0 and len(world.receipts()) == 12
    cost = world.stripe.api_requests - before
    assert cost <= 1 + 12, cost  # the events list, plus one listing per invoice.paid
    newest = max(e["created"] for e in world.stripe.events)
    cursor = world.payments.cursors.get(stream="payments").value
    assert cursor == str(newest)  # past every event it has seen, posted or not


@pytest.mark.parametrize("in_flight", [1, 8])
def test_a_month_end_poll_reads_payments_in_bulk(world: World, in_flight: int) -> None:
    for conn in (world.payments.source, world.payments.target):  # pacing is not what's tested
        conn.settings = {**conn.settings, "rate_limit_per_minute": 600_000}
        conn.save()
    target = world.payments.target
    target.settings = {**target.settings, "max_in_flight": in_flight}
    target.save()
    for n in range(3, 43):
        world.m3.state.add_invoice("C100", f"9{n:03d}", "100.00", "EUR", dudt="20271231")
    Runner(Integration.objects.get(slug="m3_stripe-invoices"), trigger="manual").run()
    world.stripe.webhooks.drop_next = 10_000  # every announcement is missed: the poll reads all
    for n in range(3, 43):
        world.pay(f"9{n:03d}")
    world.stripe.by_operation.clear()
    stripe_before, m3_before = world.stripe.api_requests, dict(world.m3.requests_by_program)

    run = world.poll()

    assert run.synced == 40 and run.failed == run.flagged == 0
    calls = world.stripe.by_operation
    # 120 events (invoice.paid, charge.succeeded, payment_intent.succeeded each) in two pages,
    # one listing of payments per paid invoice, the fees from balance transactions in bulk:
    # never a charge, payment intent, invoice or balance transaction fetched one by one.
    assert calls["GET /v1/events"] == 2, calls
    assert calls["GET /v1/invoice_payments"] == 40, calls
    assert calls["GET /v1/balance_transactions"] == 1, calls
    for one_by_one in ("charges", "payment_intents", "invoices", "balance_transactions"):
        assert calls[f"GET /v1/{one_by_one}/{{id}}"] == 0, calls
    assert world.stripe.api_requests - stripe_before == 43
    m3 = {p: n - m3_before.get(p, 0) for p, n in world.m3.requests_by_program.items()}
    assert m3.get("ARS200MI", 0) == 2, m3  # open amounts: the entries, then their amounts
    assert m3["ARS040MI"] == 2, m3  # 40 receipt batches, 25 to a request
    receipts = [r for r in world.receipts() if r["CINO"].startswith("90")]
    assert sorted(r["CUAM"] for r in receipts) == [Decimal("-100.00")] * 40
    fees = [g for g in world.m3.state.gl if g["AIT"] == ["FEE"]]
    assert [g["amount"] for g in fees] == [Decimal("3.20")] * 40  # 2.9 % + 0.30, each its own


def three_paid_while_webhooks_are_missed(world: World) -> None:
    world.m3.state.add_invoice("C100", "9003", "50.00", "EUR", dudt="20271231")
    Runner(Integration.objects.get(slug="m3_stripe-invoices"), trigger="manual").run()
    world.stripe.webhooks.drop_next = 100
    for cino in ("9001", "9002", "9003"):
        world.pay(cino)


def test_receipts_sharing_a_request_whose_answer_is_lost_are_found_posted(world: World) -> None:
    three_paid_while_webhooks_are_missed(world)
    world.m3.faults.add("lose_response", match="bulk:ARS040MI")
    first = world.poll()
    assert first.records.filter(status=S.FAILED).count() == 3  # one lost answer: all unknown
    assert len(world.receipts()) == 3  # …though CloudSuite posted all three
    second = world.poll()
    assert second.synced == 3 and len(world.receipts()) == 3  # found posted, none again
    assert len(fees(world)) == 3
    assert world.poll().done == 0 and len(world.receipts()) == 3


def test_a_receipt_refused_beside_others_fails_alone(world: World) -> None:
    three_paid_while_webhooks_are_missed(world)
    world.m3.state.ledger[:] = [e for e in world.m3.state.ledger if e.get("CINO") != "9002"]
    run = world.poll()  # 9002 is gone from CloudSuite: its batch cannot be controlled
    assert run.synced == 2, [(r.source_key, r.status, r.reason) for r in run.records.all()]
    assert sorted(r["CINO"] for r in world.receipts()) == ["9001", "9003"]
    (refused,) = run.records.exclude(status=S.SYNCED)
    assert refused.status == S.FAILED and "9002" in str(refused.source_payload), refused.reason
    assert not PostingLedger.objects.filter(
        natural_key=f"payment:{refused.source_key}", state=PostingLedger.State.CONFIRMED
    ).exists()


def pay_outside_stripe_invoice(world: World, cino: str, amount: int) -> None:
    """A payment made against the CloudSuite invoice directly (a payment link, say)."""
    meta = {
        k: world.invoice(cino)["metadata"][k]
        for k in ("m3_invoice", "m3_invoice_year", "m3_customer", "m3_currency", "m3_amount")
    }
    world.stripe.act(lambda: world.stripe.charge(amount=amount, currency="eur", metadata=meta))


def test_payments_are_judged_against_what_is_still_open(world: World) -> None:
    pay_outside_stripe_invoice(world, "9001", 1000)  # 10.00 of 1210.00
    first = AuditRecord.objects.get(integration=world.payments, status=S.SYNCED)
    assert "partial: 1200.00 EUR still open" in first.reason
    pay_outside_stripe_invoice(world, "9001", 121000)  # the full amount again: 10.00 too much
    over = AuditRecord.objects.get(integration=world.payments, status=S.FLAGGED)
    assert "more than the 1200.00 EUR still open on invoice 9001" in over.reason
    # …and what to do about it, with where: the payment in Stripe
    assert "10.00 EUR paid too much as an unapplied receipt for customer C100" in over.advice
    assert (over.see_kind, over.see_id) == ("payment", over.source_key)
    assert len(world.receipts()) == 1  # the overpayment is not posted
    pay_outside_stripe_invoice(world, "9001", 120000)  # the rest
    rest = AuditRecord.objects.filter(integration=world.payments, status=S.SYNCED).latest("pk")
    assert "the invoice is now paid in full" in rest.reason
    invoice = world.m3.state.invoice("C100", "9001")
    assert world.m3.state.open_amount(invoice) == Decimal("0.00") and invoice["RECO"] == 9
    pay_outside_stripe_invoice(world, "9001", 500)  # anything more: already paid
    paid = AuditRecord.objects.filter(integration=world.payments, status=S.FLAGGED).latest("pk")
    assert "already paid in CloudSuite" in paid.reason and len(world.receipts()) == 2


def test_a_replay_judges_the_open_amount_as_it_is_now(world: World) -> None:
    FieldMapping.objects.filter(source_value="stripe_receipts").delete()
    pay_outside_stripe_invoice(world, "9002", 30000)  # flagged: no GL mapping
    (waiting,) = AuditRecord.objects.filter(integration=world.payments, status=S.FLAGGED)
    assert waiting.looked_up == {"open_amount": {waiting.source_key: "300.00"}}  # judged on
    assert "m3_open" not in waiting.source_payload  # kept apart from what was read
    world.m3.state.put_account("1930", "Bank EUR")
    FieldMapping.objects.create(
        integration=world.payments,
        kind="gl_account",
        source_value="stripe_receipts",
        target_value="1930",
    )
    entry = world.m3.state.invoice("C100", "9002")  # meanwhile paid in CloudSuite by hand
    world.m3.state.ledger.append({**entry, "TRCD": 20, "CUAM": Decimal("-300.00"), "JRNO": 99999})
    (replayed,) = records_replay(record_ids=[waiting.pk])
    outcome = replayed.records.get()
    assert outcome.status == S.FLAGGED and "already paid in CloudSuite" in outcome.reason
    assert [r["JRNO"] for r in world.receipts()] == [99999]  # only the one made by hand


def test_a_waiting_flag_is_not_repeated_by_later_runs(world: World) -> None:
    world.stripe.webhooks.drop_next = 100
    FieldMapping.objects.filter(source_value="stripe_receipts").delete()
    world.pay("9001")
    for _ in range(3):
        world.poll()
    (item,) = AuditRecord.objects.filter(integration=world.payments, status=S.FLAGGED)
    assert item.times_seen >= 2 and item.last_seen_at is not None


def test_a_payment_is_not_judged_when_nothing_says_what_is_open() -> None:
    from syncs.flows import Mappings, Payload, SourceRecord
    from syncs.flows.stripe_m3_payments import OpenOnInvoices, StripePaymentsToM3

    movement = {
        "kind": "payment",
        "id": "pi_1",
        "amount": 5000,
        "currency": "eur",
        "fee": 0,
        "m3": {"m3_invoice": "9001", "m3_invoice_year": "2026", "m3_customer": "C100"},
    }
    mappings = Mappings({("gl_account", "stripe_receipts"): "1930"})
    # CloudSuite could not tell, and Stripe's metadata has no amount
    told = OpenOnInvoices({"pi_1": None})
    result = StripePaymentsToM3().map(SourceRecord("pi_1", movement, lookups=told), mappings)
    assert isinstance(result, Payload), result  # posted, not flagged "already paid"
    assert "still open" not in result.data["note"] and "paid in full" not in result.data["note"]


def payout_batches(world: World) -> None:
    world.payments.settings = {"receipt_batches": "payout"}
    world.payments.save()


def test_a_payout_is_one_receipt_batch_equal_to_the_deposit(world: World) -> None:
    payout_batches(world)
    world.pay("9001")  # 1210.00
    world.pay("9002", amount=10000)  # 100.00 of 300.00
    charge = world.charge_for("9002")
    world.stripe.act(lambda: world.stripe.refund(charge["id"], 2000))  # 20.00 back
    assert world.receipts() == []  # payments wait for the payout that pays them out
    before = world.m3.requests_by_program.get("ARS040MI", 0)

    (payout,) = world.stripe.act(lambda: world.stripe.payout())

    assert world.m3.requests_by_program["ARS040MI"] - before == 1  # the whole batch, one request
    (batch,) = world.m3.state.batches.values()
    assert batch["status"] == "updated"
    receipts = sorted((r["CINO"], r["CUAM"]) for r in world.receipts())
    assert receipts == [
        ("9001", Decimal("-1210.00")),
        ("9002", Decimal("-100.00")),
        ("9002", Decimal("20.00")),
    ]
    fee_total = sum((f["amount"] for f in fees(world)), Decimal(0))
    assert fee_total == Decimal("35.39") + Decimal("3.20")  # 2.9% + 0.30 on each payment
    deposit = Decimal(payout["amount"]) / 100
    assert Decimal("1210.00") + Decimal("100.00") - Decimal("20.00") - fee_total == deposit
    (record,) = AuditRecord.objects.filter(integration=world.payments, status=S.SYNCED)
    assert record.source_key == payout["id"] and "equal to the deposit" in record.reason
    assert PostingLedger.objects.get(target="m3.receipt").natural_key == f"payout:{payout['id']}"


def test_a_missed_payout_is_caught_by_polling_and_posted_once(world: World) -> None:
    payout_batches(world)
    world.stripe.webhooks.drop_next = 100
    world.pay("9001")
    (_payout,) = world.stripe.act(lambda: world.stripe.payout())
    assert world.receipts() == []
    first = world.poll()
    assert first.synced == 1 and len(world.receipts()) == 1
    assert world.poll().synced == 0 and len(world.receipts()) == 1


def test_a_payout_with_a_payment_not_linked_to_an_invoice_is_flagged(world: World) -> None:
    payout_batches(world)
    world.pay("9001")
    world.stripe.act(lambda: world.stripe.charge(amount=5000, currency="eur", metadata={}))
    world.stripe.act(lambda: world.stripe.payout())
    (flag,) = AuditRecord.objects.filter(integration=world.payments, status=S.FLAGGED)
    assert "not linked to a CloudSuite invoice" in flag.reason
    assert world.receipts() == [] and world.m3.state.batches == {}


def test_a_replay_that_posts_a_webhook_s_record_marks_its_events_processed(world: World) -> None:
    world.m3.faults.add("status", count=20, match="ARS040MI/AddBatchHead", status=400)
    world.pay("9002")
    failed = AuditRecord.objects.filter(integration=world.payments, status=S.FAILED)
    assert failed.exists() and world.receipts() == []
    assert WebhookEvent.objects.filter(processed=False).exists()
    world.m3.faults.clear()
    records_replay(record_ids=[failed.latest("pk").pk])
    assert len(world.receipts()) == 1
    assert not AuditRecord.objects.filter(
        integration=world.payments, status=S.FAILED, resolved_at=None
    ).exists()
    assert not WebhookEvent.objects.filter(processed=False).exists()


def test_a_gl_mapping_to_an_account_not_in_the_chart_is_a_form_error(
    world: World, admin_client: Any
) -> None:
    form = {
        "integration": world.payments.pk,
        "kind": "gl_account",
        "source_value": "stripe_receipts:GBP",
        "note": "",
    }
    refused = admin_client.post("/admin/syncs/fieldmapping/add/", {**form, "target_value": "4999"})
    assert refused.status_code == 200
    assert "Account 4999 is not in CloudSuite" in refused.content.decode()
    assert not FieldMapping.objects.filter(source_value="stripe_receipts:GBP").exists()
    saved = admin_client.post(
        "/admin/syncs/fieldmapping/add/", {**form, "target_value": "1930;200"}
    )
    assert saved.status_code == 302


def test_the_overview_shows_the_month_s_money_the_last_30_days_and_groups_by_erp(
    world: World, admin_client: Any
) -> None:
    from syncs.overview import overview

    world.pay("9001", amount=50000)
    FieldMapping.objects.filter(source_value="stripe_receipts").delete()
    world.pay("9002", amount=30000)  # waits for a GL account
    seen = overview()
    labels = dict(seen.money.columns)
    assert list(labels.values())[:2] == ["Collected in Stripe", "Posted to CloudSuite"]
    ((currency, cells),) = seen.money.rows
    by_label = dict(zip(labels.values(), cells, strict=True))
    assert currency == "EUR" and by_label["Collected in Stripe"].month == Decimal("500.00")
    assert by_label["Collected in Stripe"].today == Decimal("500.00")
    assert by_label["Waiting for review"].month == Decimal("300.00")
    assert by_label["Failed"].month == 0
    assert len(seen.days) == 30 and seen.days[-1].posted >= 1 and seen.days[-1].problems == 1
    assert [g.system for g in seen.groups] == ["CloudSuite"]
    assert seen.groups[0].rows[0].health == "attention"  # the one that needs a person first
    page = admin_client.get("/admin/").content.decode()
    money = page.split('id="mlc-money"', 1)[1].split("</table>", 1)[0]
    assert "Collected in Stripe" in money and "500.00 EUR" in money and "300.00 EUR" in money
    assert page.count('class="mlc-bar-posted"') == 30
    assert '<th colspan="9" scope="rowgroup">CloudSuite</th>' in page


def test_a_disputed_payment_says_what_to_do_and_links_to_stripe_where_it_is_stripe(
    world: World, admin_client: Any
) -> None:
    from connections.providers.stripe import StripeProvider

    item = AuditRecord.objects.create(
        integration=world.payments,
        stream="payments",
        source_key="dp_1",
        status=S.FLAGGED,
        reason="Dispute dp_1 of 10.00 EUR is disputed (invoice 9001): respond in Stripe.",
        advice="Answer the dispute in Stripe before Stripe's deadline.",
        see_kind="dispute",
        see_id="dp_1",
    )
    page = admin_client.get(f"/admin/audit/reviewitem/{item.pk}/change/").content.decode()
    assert "What to do next:</strong> Answer the dispute in Stripe" in page
    assert 'id="mlc-see"' not in page  # a sandbox account has no Dashboard to link to
    stripe = world.payments.source
    stripe.settings = {**(stripe.settings or {}), "base_url": "https://api.stripe.com"}
    assert StripeProvider.record_page(stripe, "dispute", "dp_1") == (
        "Answer it in Stripe's Disputes (dp_1)",
        "https://dashboard.stripe.com/disputes",
    )
    assert StripeProvider.record_page(stripe, "payout", "po_1") is None
    stripe.save(update_fields=["settings"])
    page = admin_client.get(f"/admin/audit/reviewitem/{item.pk}/change/").content.decode()
    assert 'href="https://dashboard.stripe.com/disputes"' in page


def test_connections_show_their_status_from_real_use_and_a_test_button(
    world: World, admin_client: Any
) -> None:
    from connections.models import Connection

    stripe, m3 = world.payments.source, world.payments.target
    assert stripe.status == Connection.Status.UNTESTED
    world.pay("9001")
    for used in (stripe, m3):
        used.refresh_from_db()
        assert used.status == Connection.Status.OK and used.last_used_at is not None
        assert used.last_checked_at is None  # never tested: used, and that says enough
    page = admin_client.get(f"/admin/connections/connection/{stripe.pk}/change/")
    text = page.content.decode()
    assert "last worked" in text and 'id="mlc-test-connection"' in text
    tested = admin_client.post(f"/admin/connections/connection/{stripe.pk}/test/", follow=True)
    assert tested.status_code == 200 and "Stripe" in tested.content.decode()
    stripe.refresh_from_db()
    assert stripe.last_checked_at is not None
    stripe.credentials = {**stripe.credentials, "api_key": "sk_test_" + "x" * 24}
    stripe.save()
    from connections import usage

    usage.forget()
    world.pay("9002")  # the webhook's run reads Stripe with a key Stripe refuses
    stripe.refresh_from_db()
    assert stripe.status == Connection.Status.FAILING and stripe.last_failed_at is not None
    assert "sk_test_xxxx" not in stripe.last_failure  # never a secret
