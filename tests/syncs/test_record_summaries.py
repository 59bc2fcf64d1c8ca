"""Audit rows written before the runner wrote summaries get them from their stored source data
(migration ``syncs.0022``), through the same ``Flow.summary`` the runner uses."""

from __future__ import annotations

import importlib
from decimal import Decimal

from django.apps import apps

from audit.models import AuditRecord
from syncs.models import Integration

fill = importlib.import_module("syncs.migrations.0022_record_summaries").fill


def test_rows_written_before_summaries_get_them_and_a_row_read_in_part_keeps_none(
    integration: Integration,
) -> None:
    stripe = Integration.objects.create(
        name="Payments",
        slug="payments",
        flow="stripe_m3.payments",
        source=integration.source,
        target=integration.target,
    )
    movement = {
        "kind": "refund",
        "id": "re_1",
        "amount": 2000,
        "currency": "gbp",
        "customer_name": "Acme Ltd",
        "m3": {"m3_invoice": "9001", "m3_customer": "C100"},
    }
    old = AuditRecord.objects.create(
        integration=stripe, stream="payments", source_key="re_1", source_payload=movement
    )
    cut = AuditRecord.objects.create(
        integration=stripe, stream="payments", source_key="x", source_payload={"kind": "payment"}
    )
    fill(apps, None)
    old.refresh_from_db()
    cut.refresh_from_db()
    assert (old.amount, old.currency, old.party, old.party_name, old.document) == (
        Decimal("-20.00"),
        "GBP",
        "C100",
        "Acme Ltd",
        "9001",
    )
    assert (cut.amount, cut.party) == (None, "")
