"""Reconciliation for month-end: what Stripe collected (or Wise paid out) in a period against
what ml-connector posted to CloudSuite for it, per currency, every difference listed and
explained.

The payment system's side is read from the system itself (Stripe's charges and refunds, Wise's
sent transfers, created in the period, every page), not from what ml-connector happened to
receive; the CloudSuite side is the receipts and payment journals the posting ledger confirmed,
with the amounts that were sent.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.utils import timezone

from audit.models import AuditRecord
from connections.providers.errors import ApiError
from connections.providers.registry import client_for
from syncs.models import Integration
from syncs.money import from_minor

logger = logging.getLogger(__name__)

RECONCILED_FLOWS = ("stripe_m3.payments", "wise_m3.payments")
MAX_MOVEMENTS = 20_000  # a period larger than this is cut short, and says so
S = AuditRecord.Status


@dataclass
class Difference:
    """One movement whose collection and posting do not agree."""

    key: str
    kind: str
    currency: str
    collected: Decimal
    posted: Decimal | None
    explanation: str
    record_id: int | None = None


@dataclass
class CurrencyTotals:
    currency: str
    collected: Decimal = Decimal(0)
    posted: Decimal = Decimal(0)
    movements: int = 0

    @property
    def difference(self) -> Decimal:
        return self.collected - self.posted


@dataclass
class Reconciliation:
    integration: Integration
    start: date
    end: date
    totals: list[CurrencyTotals] = field(default_factory=list)
    differences: list[Difference] = field(default_factory=list)
    posted_for_earlier: list[Difference] = field(default_factory=list)
    truncated: bool = False
    error: str = ""

    @property
    def source_name(self) -> str:
        return "Wise" if self.integration.flow == "wise_m3.payments" else "Stripe"

    @property
    def collected_label(self) -> str:
        return "Paid through Wise" if self.source_name == "Wise" else "Collected in Stripe"

    @property
    def balanced(self) -> bool:
        return not self.error and not self.differences


def _bounds(start: date, end: date) -> tuple[int, int]:
    """The period [start, end] in the server's time zone, as Unix times [gte, lt)."""
    tz = timezone.get_current_timezone()
    begin = datetime.combine(start, time.min, tzinfo=tz)
    stop = datetime.combine(end + timedelta(days=1), time.min, tzinfo=tz)
    return int(begin.timestamp()), int(stop.timestamp())


def _signed_amount(sent: Any) -> Decimal | None:
    """The amount a posted receipt moved (payments positive, refunds negative)."""
    lines = (sent or {}).get("lines") if isinstance(sent, dict) else None
    if not lines:
        return None
    try:
        return sum((Decimal(str(line.get("PYAM", "0"))) for line in lines), Decimal(0))
    except ArithmeticError:
        return None


def _synced(
    integration: Integration, source_keys: set[str], begin: datetime, stop: datetime
) -> Iterator[AuditRecord]:
    """The integration's confirmed postings of ``source_keys``, and any made in [begin, stop),
    each once, oldest first."""
    synced = (
        AuditRecord.objects.filter(integration=integration, status=S.SYNCED)
        .exclude(ledger=None)
        .only("id", "source_key", "source_payload", "sent_payload", "created_at")
    )
    keys = sorted(source_keys)
    batches = [synced.filter(source_key__in=keys[i : i + 500]) for i in range(0, len(keys), 500)]
    batches.append(synced.filter(created_at__gte=begin, created_at__lt=stop))
    records = {r.pk: r for rows in batches for r in rows.iterator()}
    yield from (records[pk] for pk in sorted(records))


def _posted(
    integration: Integration, source_keys: set[str], window: tuple[datetime, datetime]
) -> dict[str, tuple[Decimal, AuditRecord]]:
    """The receipts posted for Stripe movements — one by one, or as the parts of a payout
    (looked for two weeks either side of the period): ledger key → (signed amount, record)."""
    found: dict[str, tuple[Decimal, AuditRecord]] = {}
    begin, stop = window[0] - timedelta(days=14), window[1] + timedelta(days=14)
    for record in _synced(integration, source_keys, begin, stop):
        data = record.source_payload or {}
        kind = data.get("kind")
        if kind == "payout":
            for part in data.get("parts") or []:
                if part.get("kind") in ("payment", "refund"):
                    amount = from_minor(int(part["amount"]), str(part["currency"]).upper())
                    sign = 1 if part["kind"] == "payment" else -1
                    found[f"{part['kind']}:{part['id']}"] = (amount * sign, record)
        elif kind in ("payment", "refund"):
            amount = _signed_amount(record.sent_payload)
            if amount is not None:
                found[f"{kind}:{record.source_key}"] = (amount, record)
    return found


def _explain(integration: Integration, source_key: str) -> tuple[str, int | None]:
    """Why a collected movement has no posting yet, in plain words."""
    record = (
        AuditRecord.objects.filter(integration=integration, source_key=source_key)
        .order_by("-pk")
        .first()
    )
    if record is None:
        return "Not read by ml-connector yet: the next run or webhook brings it.", None
    if record.status in (S.FAILED, S.FLAGGED) and record.resolved_at is None:
        return f"Waiting in the review queue: {record.reason}", record.pk
    if record.resolved_at is not None and record.status in (S.FAILED, S.FLAGGED):
        return f"Taken out of the review queue: {record.resolution}", record.pk
    return f"{record.get_status_display()}: {record.reason or 'no posting'}", record.pk


Collected = dict[str, tuple[str, str, Decimal]]  # ledger-ish key → (kind, currency, amount)


def _stripe_collected(integration: Integration, gte: int, lt: int) -> tuple[Collected, bool]:
    """Stripe's succeeded charges (positive) and refunds (negative) created in [gte, lt)."""
    collected: Collected = {}
    stripe = client_for(integration.source)
    try:
        for charge in stripe.list_charges(created_gte=gte, created_lt=lt):
            if charge.get("status") != "succeeded" or not charge.get("payment_intent"):
                continue
            currency = str(charge["currency"]).upper()
            amount = from_minor(int(charge["amount"]), currency)
            collected[f"payment:{charge['payment_intent']}"] = ("payment", currency, amount)
            if len(collected) >= MAX_MOVEMENTS:
                return collected, True
        for refund in stripe.list_refunds_created(created_gte=gte, created_lt=lt):
            if refund.get("status") != "succeeded":
                continue
            currency = str(refund["currency"]).upper()
            amount = from_minor(int(refund["amount"]), currency)
            collected[f"refund:{refund['id']}"] = ("refund", currency, -amount)
            if len(collected) >= MAX_MOVEMENTS:
                return collected, True
    finally:
        stripe.close()
    return collected, False


def _wise_created(transfer: dict[str, Any]) -> int | None:
    raw = str(transfer.get("created") or "").replace("Z", "+00:00")
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        return None
    if when.tzinfo is None:  # Wise writes UTC without an offset
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp())


def _wise_paid(integration: Integration, gte: int, lt: int) -> tuple[Collected, bool]:
    """Wise transfers created in [gte, lt) whose money was sent: what the supplier received."""
    collected: Collected = {}
    wise = client_for(integration.source)
    try:
        for transfer in wise.list_transfers(status="outgoing_payment_sent"):
            created = _wise_created(transfer)
            if created is None or not gte <= created < lt:
                continue
            currency = str(transfer.get("targetCurrency") or "").upper()
            amount = Decimal(str(transfer.get("targetValue") or "0"))
            collected[f"transfer:{transfer['id']}"] = ("transfer", currency, amount)
            if len(collected) >= MAX_MOVEMENTS:
                return collected, True
    finally:
        wise.close()
    return collected, False


def _wise_posted(
    integration: Integration, source_keys: set[str], window: tuple[datetime, datetime]
) -> dict[str, tuple[Decimal, AuditRecord]]:
    """The payment journals posted for Wise transfers: the supplier-liability line, net of any
    reversal (transfer key → (amount, the latest record))."""
    found: dict[str, tuple[Decimal, AuditRecord]] = {}
    for record in _synced(integration, source_keys, *window):
        lines = (record.sent_payload or {}).get("lines") or []
        if lines:
            key = f"transfer:{record.source_key}"
            before = found.get(key, (Decimal(0), record))[0]
            found[key] = (before + Decimal(str(lines[0].get("CUAM") or "0")), record)
    return found


def reconcile(*, integration: Integration, start: date, end: date) -> Reconciliation:
    """Stripe's collections of [start, end] against CloudSuite's receipts for them."""
    result = Reconciliation(integration=integration, start=start, end=end)
    if integration.flow not in RECONCILED_FLOWS:
        result.error = "Only payment integrations (Stripe or Wise → CloudSuite) are reconciled."
        return result
    gte, lt = _bounds(start, end)
    reader = _stripe_collected if integration.flow == "stripe_m3.payments" else _wise_paid
    try:
        collected, result.truncated = reader(integration, gte, lt)
    except ApiError as exc:
        result.error = (
            f"{result.source_name} could not list the period's payments: "
            f"{exc.remote_message or exc.message}"
        )
        return result
    period_start = datetime.fromtimestamp(gte, tz=timezone.get_current_timezone())
    period_end = datetime.fromtimestamp(lt, tz=timezone.get_current_timezone())
    posting = _posted if integration.flow == "stripe_m3.payments" else _wise_posted
    posted = posting(
        integration, {k.split(":", 1)[1] for k in collected}, (period_start, period_end)
    )
    totals: dict[str, CurrencyTotals] = defaultdict(lambda: CurrencyTotals(""))
    for key, (kind, currency, amount) in sorted(collected.items()):
        t = totals[currency]
        t.currency, t.movements = currency, t.movements + 1
        t.collected += amount
        got = posted.get(key)
        if got is not None:
            t.posted += got[0]
            if got[0] != amount:
                result.differences.append(
                    Difference(
                        key,
                        kind,
                        currency,
                        amount,
                        got[0],
                        f"Posted with another amount ({got[0]} {currency}).",
                        got[1].pk,
                    )
                )
            continue
        why, record_id = _explain(integration, key.split(":", 1)[1])
        result.differences.append(Difference(key, kind, currency, amount, None, why, record_id))
    for key, (amount, record) in posted.items():
        if key in collected or not (period_start <= record.created_at < period_end):
            continue
        currency = str((record.sent_payload or {}).get("lines", [{}])[0].get("CUCD", ""))
        result.posted_for_earlier.append(
            Difference(
                key,
                key.split(":", 1)[0],
                currency,
                Decimal(0),
                amount,
                "Posted in this period for a payment Stripe collected in another period.",
                record.pk,
            )
        )
    result.totals = sorted(totals.values(), key=lambda t: t.currency)
    return result
