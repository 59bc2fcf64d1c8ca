"""Month-end reconciliation against the Stripe and CloudSuite simulators, and the demo's story
that puts an overpayment and a dispute in the review queue by itself."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from audit.models import AuditRecord
from connections.models import Connection
from connections.sandbox.base import Served
from connections.sandbox.m3 import M3Simulator
from connections.sandbox.story import DemoStory
from connections.sandbox.stripe import StripeSimulator
from syncs.models import FieldMapping, Integration
from syncs.reconcile import reconcile
from syncs.runner import Runner

pytestmark = pytest.mark.django_db(transaction=True)


def _integration(flow: str, source: Connection, target: Connection) -> Integration:
    integ = Integration(
        name=flow, slug=flow.replace(".", "-"), flow=flow, source=source, target=target
    )
    integ.full_clean()
    integ.save()
    return integ


@pytest.fixture
def world(
    m3_sim: Served, stripe_sim: Served, m3_connection: Connection, stripe_connection: Connection
) -> dict[str, Any]:
    m3: M3Simulator = m3_sim.app  # type: ignore[assignment]
    stripe: StripeSimulator = stripe_sim.app  # type: ignore[assignment]
    m3.state.put_customer("C100", CUNM="Acme Stores", CUCD="EUR")
    m3.state.put_customer("C200", CUNM="Brit Ltd", CUCD="GBP")
    m3.state.put_account("1930", "Bank EUR")
    m3.state.put_account("FEE", "Card fees")
    m3.state.add_invoice("C100", "9001", "1210.00", "EUR", ivdt="20261101", dudt="20271231")
    m3.state.add_invoice("C100", "9002", "300.00", "EUR", ivdt="20261102", dudt="20271231")
    m3.state.add_invoice("C200", "9003", "80.00", "GBP", ivdt="20261102", dudt="20271231")
    for flow in ("m3_stripe.customers", "m3_stripe.invoices"):
        Runner(_integration(flow, m3_connection, stripe_connection), trigger="manual").run()
    payments = _integration("stripe_m3.payments", stripe_connection, m3_connection)
    FieldMapping.objects.create(
        integration=payments,
        kind="gl_account",
        source_value="stripe_receipts:EUR",
        target_value="1930",
    )
    FieldMapping.objects.create(
        integration=payments, kind="charge_code", source_value="stripe_fees", target_value="FEE"
    )
    return {"m3": m3, "stripe": stripe, "payments": payments}


def _invoice(stripe: StripeSimulator, cino: str) -> dict[str, Any]:
    (found,) = [
        i for i in stripe.objects["invoice"].values() if i["metadata"]["m3_invoice"] == cino
    ]
    return found


def _poll(payments: Integration) -> None:
    Runner(Integration.objects.get(pk=payments.pk), trigger="schedule").run()


def test_the_period_balances_when_every_collection_is_posted_and_lists_what_is_not(
    world: dict[str, Any], admin_client: Client
) -> None:
    stripe, payments = world["stripe"], world["payments"]
    for cino in ("9001", "9003"):
        stripe.act(lambda cino=cino: stripe.pay_invoice(_invoice(stripe, cino)["id"]))
    _poll(payments)
    today = timezone.localdate()
    result = reconcile(integration=payments, start=today - timedelta(days=1), end=today)
    totals = {t.currency: t for t in result.totals}
    assert totals["EUR"].collected == totals["EUR"].posted == Decimal("1210.00")
    # GBP receipts have no GL account mapped: collected, not posted, and said why.
    assert (totals["GBP"].collected, totals["GBP"].posted) == (Decimal("80.00"), Decimal(0))
    (difference,) = result.differences
    assert difference.currency == "GBP" and "review queue" in difference.explanation
    assert "No GL account is mapped" in difference.explanation
    page = admin_client.get(
        "/admin/syncs/integration/reconcile/",
        {"integration": payments.pk, "start": str(today), "end": str(today)},
    ).content.decode()
    assert "1 difference(s)" in page and "80.00 GBP" in page
    totals_table = page.split('id="mlc-reconcile-totals"', 1)[1].split("</table>", 1)[0]
    assert '<td class="num">1,210.00 EUR</td>' in totals_table  # each total with its currency
    assert '<td class="num">0.00 GBP</td>' in totals_table and "<b>80.00 GBP</b>" in totals_table
    # Nothing collected outside the period.
    earlier = reconcile(
        integration=payments, start=today - timedelta(days=40), end=today - timedelta(days=30)
    )
    assert earlier.totals == [] and earlier.balanced


def test_a_bad_period_is_a_form_error(world: dict[str, Any], admin_client: Client) -> None:
    page = admin_client.get(
        "/admin/syncs/integration/reconcile/",
        {"integration": world["payments"].pk, "start": "2026-12-02", "end": "2026-11-01"},
    )
    assert page.status_code == 200 and "ends before it starts" in page.content.decode()


def test_the_demo_story_puts_an_overpayment_and_a_dispute_in_the_queue(
    world: dict[str, Any],
) -> None:
    story = DemoStory(world["m3"], world["stripe"])
    assert "by bank transfer" in story.tick()
    assert "disputed" in story.tick()
    assert story.tick() == ""  # each case once
    _poll(world["payments"])
    reasons = [
        r.reason
        for r in AuditRecord.objects.filter(integration=world["payments"], status="flagged")
    ]
    assert any(r.startswith("Overpayment") for r in reasons), reasons
    assert any("disputed" in r for r in reasons), reasons
