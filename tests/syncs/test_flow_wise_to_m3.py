"""Wise transfers → CloudSuite payment journals: signed webhooks into a live server (duplicated,
out of order, forged), the poll for a missed one, GL checks and replay, over HTTP."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests

from audit.models import AuditRecord
from connections.models import Connection
from connections.sandbox.base import Served
from connections.sandbox.m3 import M3Simulator
from connections.sandbox.wise import WiseSimulator
from syncs.models import FieldMapping, Integration, SyncRun, WebhookEvent
from syncs.runner import Runner
from syncs.services import records_replay

S = AuditRecord.Status
pytestmark = pytest.mark.django_db(transaction=True)
SENT = ("processing", "funds_converted", "outgoing_payment_sent")


def make(flow: str, source: Connection, target: Connection) -> Integration:
    integ = Integration(
        name=flow, slug=flow.replace(".", "-"), flow=flow, source=source, target=target
    )
    integ.full_clean()
    integ.save()
    return integ


def run(integ: Integration) -> SyncRun:
    return Runner(Integration.objects.get(pk=integ.pk), trigger="schedule").run()


@dataclass
class World:
    m3: M3Simulator
    wise: WiseSimulator
    quotes: Integration
    payments: Integration
    url: str

    def transfer(self, invoice: str = "R-100") -> dict[str, Any]:
        """A person makes the transfer in Wise from the quote prepared for ``invoice``."""
        record = AuditRecord.objects.get(integration=self.quotes, source_key=f"S1/{invoice}")
        quote = self.wise.quotes[record.target_key]
        return self.wise.make_transfer(quote["id"], quote["targetAccount"], invoice)

    def journals(self) -> list[dict[str, Any]]:
        return self.m3.state.journal_lines()


@pytest.fixture
def world(
    m3_sim: Served,
    wise_sim: Served,
    m3_connection: Connection,
    wise_connection: Connection,
    live_server: Any,
) -> World:
    m3: M3Simulator = m3_sim.app  # type: ignore[assignment]
    wise: WiseSimulator = wise_sim.app  # type: ignore[assignment]
    m3.state.put_account("2440", "Accounts payable")
    m3.state.put_account("1940", "Wise EUR balance")
    m3.state.put_supplier(
        "S1", SUNM="Rösterei Nord GmbH", CUCD="EUR", SFI1="DE89370400440532013000"
    )
    soon = (date.today() + timedelta(days=3)).strftime("%Y%m%d")
    m3.state.add_supplier_invoice("S1", "R-100", "1250.40", "EUR", due=soon)
    m3.state.add_supplier_invoice("S1", "R-200", "80.00", "EUR", due=soon)
    recipients = make("m3_wise.recipients", m3_connection, wise_connection)
    quotes = make("m3_wise.quotes", m3_connection, wise_connection)
    payments = make("wise_m3.payments", wise_connection, m3_connection)
    for source, account in (("wise_ap:EUR", "2440"), ("wise_bank:EUR", "1940")):
        FieldMapping.objects.create(
            integration=payments, kind="gl_account", source_value=source, target_value=account
        )
    assert run(recipients).synced == 1 and run(quotes).synced == 2
    url = f"{live_server.url}/webhooks/wise/{wise_connection.slug}/"
    wise.endpoints.append(url)
    return World(m3, wise, quotes, payments, url)


def test_a_sent_transfer_is_posted_to_cloudsuite_once(world: World) -> None:
    transfer = world.transfer()
    assert world.journals() == []  # waiting for money: nothing posted
    world.wise.move(transfer["id"], *SENT)
    (debit, credit) = world.journals()
    assert (debit["AIT1"], debit["CUAM"], debit["CUCD"]) == ("2440", Decimal("1250.40"), "EUR")
    assert (credit["AIT1"], credit["CUAM"]) == ("1940", Decimal("-1250.40"))
    assert debit["VTXT"] == f"Wise {transfer['id']} R-100"  # the reconciliation reference
    assert (debit["SUNO"], debit["SINO"], credit["SUNO"]) == ("S1", "R-100", "S1")
    posted = AuditRecord.objects.get(integration=world.payments, status=S.SYNCED)
    assert posted.seen_via == "webhook" and str(transfer["id"]) in posted.reason
    assert run(world.payments).synced == 0  # the poll finds it done
    assert len(world.journals()) == 2


def test_duplicate_and_out_of_order_deliveries_post_once(world: World) -> None:
    world.wise.duplicate = world.wise.reorder = True
    transfer = world.transfer()
    world.wise.move(transfer["id"], *SENT)  # sent arrives first, then the older states, twice
    assert len(world.journals()) == 2
    deliveries = {d["id"] for d in world.wise.deliveries}
    assert WebhookEvent.objects.count() == len(deliveries)  # a repeated delivery is stored once
    assert AuditRecord.objects.filter(integration=world.payments, status=S.SYNCED).count() == 1


def test_the_same_event_under_a_new_delivery_id_is_stored_once(world: World) -> None:
    """Wise's signature covers the body, not X-Delivery-Id: a resend under a new id (and a new
    sent_at) is the same event."""
    world.wise.redeliver = True
    world.wise.synchronous = True
    transfer = world.transfer()
    world.wise.move(transfer["id"], *SENT)
    sent = world.wise.deliveries
    assert len({d["id"] for d in sent}) == 2 * (1 + len(SENT))  # every event twice, new ids
    assert {d["status"] for d in sent} == {200}
    assert WebhookEvent.objects.count() == 1 + len(SENT)
    assert len(world.journals()) == 2


def test_a_forged_signature_is_refused_and_nothing_is_stored(world: World) -> None:
    world.wise.bad_signature = True
    transfer = world.transfer()
    world.wise.move(transfer["id"], *SENT)
    assert {d["status"] for d in world.wise.deliveries} == {400}
    assert WebhookEvent.objects.count() == 0 and world.journals() == []
    body = json.dumps({"data": {}, "event_type": "transfers#state-change"}).encode()
    unsigned = requests.post(world.url, data=body, timeout=10)
    assert unsigned.status_code == 400 and WebhookEvent.objects.count() == 0
    assert run(world.payments).synced == 1  # the poll still finds the money sent
    assert len(world.journals()) == 2


def test_a_missed_webhook_is_caught_by_the_poll(world: World) -> None:
    world.wise.endpoints.clear()  # the deliveries never arrive
    transfer = world.transfer()
    world.wise.move(transfer["id"], *SENT)
    assert world.journals() == []
    polled = run(world.payments)
    assert polled.synced == 1 and polled.records.get().seen_via == "poll"
    assert len(world.journals()) == 2


def test_a_bounced_transfer_is_reversed_once(world: World) -> None:
    transfer = world.transfer()
    world.wise.move(transfer["id"], *SENT)
    world.wise.move(transfer["id"], "bounced_back")
    lines = world.journals()
    assert [str(line["CUAM"]) for line in lines] == ["1250.40", "-1250.40", "-1250.40", "1250.40"]
    assert run(world.payments).synced == 0


def test_an_unmapped_gl_account_is_flagged_then_replayed(world: World) -> None:
    FieldMapping.objects.filter(source_value="wise_bank:EUR").delete()
    transfer = world.transfer()
    world.wise.move(transfer["id"], *SENT)
    flagged = AuditRecord.objects.get(integration=world.payments, status=S.FLAGGED)
    assert "wise_bank:EUR" in flagged.reason and world.journals() == []
    FieldMapping.objects.create(
        integration=world.payments,
        kind="gl_account",
        source_value="wise_bank:EUR",
        target_value="1999",  # not in the chart
    )
    records_replay(record_ids=[flagged.pk])
    again = AuditRecord.objects.filter(integration=world.payments).latest("pk")
    assert again.status == S.FLAGGED and "1999" in again.reason and "chart" in again.reason
    FieldMapping.objects.filter(source_value="wise_bank:EUR").update(target_value="1940")
    records_replay(record_ids=[again.pk])
    assert len(world.journals()) == 2


def test_the_month_reconciles_what_wise_paid_against_the_journals(world: World) -> None:
    from django.utils import timezone

    from syncs.reconcile import reconcile

    paid, waiting = world.transfer("R-100"), world.transfer("R-200")
    world.wise.move(paid["id"], *SENT)
    FieldMapping.objects.filter(integration=world.payments, source_value="wise_bank:EUR").delete()
    world.wise.move(waiting["id"], *SENT)  # no Wise balance account mapped: flagged
    today = timezone.localdate()
    result = reconcile(integration=world.payments, start=today, end=today)
    (eur,) = result.totals
    assert (eur.currency, eur.collected, eur.posted) == (
        "EUR",
        Decimal("1330.40"),
        Decimal("1250.40"),
    )
    (difference,) = result.differences
    assert difference.key == f"transfer:{waiting['id']}" and difference.posted is None
    assert "review queue" in difference.explanation


def test_a_posted_journal_reads_as_its_debit_and_credit_lines_with_account_names(
    world: World, admin_client: Any
) -> None:
    transfer = world.transfer()
    world.wise.move(transfer["id"], *SENT)
    posted = AuditRecord.objects.get(integration=world.payments, status=S.SYNCED)
    page = admin_client.get(f"/admin/audit/auditrecord/{posted.pk}/change/").content.decode()
    posting = page.split('id="mlc-posting"', 1)[1].split("</fieldset>", 1)[0]
    assert "Posted to CloudSuite" in posting
    debit, credit = posting.split("<tbody>", 1)[1].split("</tbody>", 1)[0].split("</tr>")[:2]
    assert "2440" in debit and "Accounts payable" in debit and "1,250.40 EUR</td><td" in debit
    assert "1940" in credit and "Wise EUR balance" in credit
    assert credit.rstrip().endswith('<td class="num">1,250.40 EUR</td>')
    totals = posting.split("<tfoot>", 1)[1]
    assert totals.count("1,250.40 EUR") == 2  # debits equal credits
    summary = page.split('id="mlc-doc"', 1)[1].split("</table>", 1)[0]
    assert "1,250.40 EUR" in summary and "R-100" in summary and " UTC" in summary
    technical = page.split('id="mlc-technical"', 1)[1]
    assert "What was sent" in technical  # folded away, under the document
