"""Stripe payments and disputes → notes on IFS Cloud invoices: signed webhooks into a live
server, the poll, ETags, a locked record, and both simulators over HTTP."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from audit.models import AuditRecord
from connections.models import Connection
from connections.sandbox.base import Served
from connections.sandbox.ifs import IfsSimulator
from connections.sandbox.stripe import StripeSimulator
from syncs.models import Integration, SyncRun, WebhookEvent
from syncs.runner import Runner

S = AuditRecord.Status
INVOICES = "CustomerInvoiceHandling.svc/CustomerInvoiceSet"
pytestmark = pytest.mark.django_db(transaction=True)


@dataclass
class World:
    ifs: IfsSimulator
    stripe: StripeSimulator
    notes: Integration

    def pay(self, invoice: str, amount: int = 121000) -> dict[str, Any]:
        meta = {"ifs_invoice": invoice, "ifs_company": "10"}
        return self.stripe.act(
            lambda: self.stripe.charge(amount=amount, currency="sek", metadata=meta)
        )

    def note(self, invoice: str) -> str:
        found = self.ifs.entity(INVOICES, "10", invoice)
        assert found is not None
        return str(found.get("NoteText") or "")

    def poll(self) -> SyncRun:
        return Runner(Integration.objects.get(pk=self.notes.pk), trigger="schedule").run()


@pytest.fixture
def world(
    ifs_sim: Served,
    stripe_sim: Served,
    ifs_connection: Connection,
    stripe_connection: Connection,
    live_server: Any,
) -> World:
    ifs: IfsSimulator = ifs_sim.app  # type: ignore[assignment]
    stripe: StripeSimulator = stripe_sim.app  # type: ignore[assignment]
    for number in ("1001", "1002"):
        ifs.put(
            INVOICES,
            Company="10",
            InvoiceId=number,
            Objstate="Posted",
            GrossAmount="1210.00",
            NoteText="",
        )
    notes = Integration(
        name="Stripe → IFS notes",
        slug="stripe-ifs-notes",
        flow="stripe_ifs.notes",
        source=stripe_connection,
        target=ifs_connection,
    )
    notes.full_clean()
    notes.save()
    stripe.webhooks.endpoints.append(
        {
            "url": f"{live_server.url}/webhooks/stripe/{stripe_connection.slug}/",
            "secret": stripe_connection.credentials["webhook_secret"],
        }
    )
    return World(ifs, stripe, notes)


def test_a_payment_is_noted_on_the_ifs_invoice_once(world: World) -> None:
    world.stripe.webhooks.duplicate = True
    before = world.ifs.entity(INVOICES, "10", "1001")["@odata.etag"]  # type: ignore[index]
    charge = world.pay("1001")
    note = world.note("1001")
    assert note.count(charge["payment_intent"]) == 1 and "Paid in Stripe: 1210.00 SEK" in note
    assert world.ifs.entity(INVOICES, "10", "1001")["@odata.etag"] != before  # type: ignore[index]
    assert world.note("1002") == ""
    assert world.poll().synced == 0  # the poll finds it done


def test_a_dispute_is_noted_too(world: World) -> None:
    charge = world.pay("1002", 50000)
    world.stripe.act(lambda: world.stripe.dispute(charge["id"]))
    note = world.note("1002")
    assert "Paid in Stripe: 500.00 SEK" in note and "Disputed in Stripe: 500.00 SEK" in note
    assert note.index("Paid") < note.index("Disputed")


def test_a_locked_invoice_is_noted_when_it_is_free_again(world: World) -> None:
    world.ifs.lock_entity(INVOICES, "10", "1001")
    charge = world.pay("1001")
    failed = AuditRecord.objects.get(integration=world.notes, status=S.FAILED)
    assert failed.retryable and "locked" in failed.reason, failed.detail
    assert world.note("1001") == ""
    assert WebhookEvent.objects.filter(processed=False).exists()  # queued again later
    world.ifs.lock_entity(INVOICES, "10", "1001", locked=False)
    again = world.poll()
    assert again.synced == 1 and world.note("1001").count(charge["payment_intent"]) == 1


def test_a_payment_for_another_system_is_left_alone(world: World) -> None:
    world.stripe.act(lambda: world.stripe.charge(amount=1000, currency="sek", metadata={}))
    assert not AuditRecord.objects.filter(integration=world.notes, status=S.SYNCED).exists()


def test_a_person_editing_the_invoice_meanwhile_keeps_their_edit(world: World) -> None:
    """The invoice changes in IFS between the flow's read and its write: IFS answers 412 to
    the stale ETag, the flow reads it again and writes once more — the person's edit stays."""
    key = (INVOICES, ("10", 1001))  # the invoice id is a number, as $metadata types it
    world.ifs.edit_after_read[key] = {"NoteText": "Customer called about delivery."}
    charge = world.pay("1001")
    note = world.note("1001")
    assert note.startswith("Customer called about delivery.")
    assert note.count(charge["payment_intent"]) == 1 and key not in world.ifs.edit_after_read
    assert AuditRecord.objects.filter(integration=world.notes, status=S.SYNCED).count() == 1


def test_a_lost_answer_to_the_note_leaves_one_note_one_write_and_no_review_item(
    world: World,
) -> None:
    world.ifs.faults.add("lose_response", match="PATCH", count=1)  # written, answer lost
    charge = world.pay("1001")
    assert world.note("1001").count(charge["payment_intent"]) == 1
    assert world.ifs.patches == 1  # read back after the loss: not written again
    assert not AuditRecord.objects.filter(
        integration=world.notes, status__in=(S.FAILED, S.FLAGGED), resolved_at=None
    ).exists()
    assert world.poll().synced == 0  # a re-run writes nothing
    assert world.ifs.patches == 1


def test_a_payment_and_a_dispute_of_one_invoice_in_one_run_are_two_notes_and_no_item(
    world: World,
) -> None:
    world.stripe.webhooks.endpoints.clear()  # both found by the poll, in one run
    charge = world.pay("1002", 50000)
    world.stripe.act(lambda: world.stripe.dispute(charge["id"]))
    run = world.poll()
    assert run.synced == 2, [r.reason for r in run.records.all()]
    note = world.note("1002")
    assert "Paid in Stripe: 500.00 SEK" in note and "Disputed in Stripe: 500.00 SEK" in note
    assert world.ifs.patches == 2
    assert not AuditRecord.objects.filter(
        integration=world.notes, status__in=(S.FAILED, S.FLAGGED), resolved_at=None
    ).exists()


def test_a_note_that_keeps_failing_is_one_review_item_that_counts(world: World) -> None:
    world.stripe.webhooks.endpoints.clear()
    world.ifs.lock_entity(INVOICES, "10", "1001")
    world.pay("1001")
    for _ in range(3):
        world.poll()
    (failed,) = AuditRecord.objects.filter(
        integration=world.notes, status=S.FAILED, resolved_at=None
    )
    assert failed.times_seen == 3 and failed.retryable
