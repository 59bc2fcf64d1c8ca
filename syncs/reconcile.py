"""Reconciliation for month-end: what a payment system moved in a period against what
ml-connector posted to the ERP for it, per currency, every difference listed and explained.

How each flow is reconciled is its own declaration (``Flow.reconciler``: what the payment
system moved, read from the system itself, every page; what each confirmed posting stood for);
this module compares the two and knows no system by name.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.utils import timezone

from audit.models import AuditRecord
from connections.providers import plain
from connections.providers.errors import ApiError
from connections.providers.registry import client_for, provider_class
from syncs.flows import FLOWS
from syncs.flows.reconciling import PostedRecord
from syncs.models import Integration

logger = logging.getLogger(__name__)

RECONCILED_FLOWS = tuple(key for key, flow in FLOWS.items() if flow.reconciler is not None)
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
    def _flow(self) -> Any:
        return FLOWS[self.integration.flow]

    @property
    def source_name(self) -> str:
        return plain.system_name(provider_class(self._flow.source_kind))

    @property
    def target_name(self) -> str:
        return plain.system_name(provider_class(self._flow.target_kind))

    @property
    def verb(self) -> str:
        return self._flow.reconciler.verb

    @property
    def collected_label(self) -> str:
        return self._flow.reconciler.collected_label

    @property
    def balanced(self) -> bool:
        return not self.error and not self.differences


def _bounds(start: date, end: date) -> tuple[int, int]:
    """The period [start, end] in the server's time zone, as Unix times [gte, lt)."""
    tz = timezone.get_current_timezone()
    begin = datetime.combine(start, time.min, tzinfo=tz)
    stop = datetime.combine(end + timedelta(days=1), time.min, tzinfo=tz)
    return int(begin.timestamp()), int(stop.timestamp())


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


def reconcile(*, integration: Integration, start: date, end: date) -> Reconciliation:
    """What the integration's payment system moved in [start, end] against the postings."""
    result = Reconciliation(integration=integration, start=start, end=end)
    flow = FLOWS.get(integration.flow)
    reconciler = flow.reconciler if flow is not None else None
    if reconciler is None:
        result.error = "Only payment integrations are reconciled."
        return result
    gte, lt = _bounds(start, end)
    client = client_for(integration.source)
    try:
        collected, result.truncated = reconciler.collected(client, gte, lt, limit=MAX_MOVEMENTS)
    except ApiError as exc:
        result.error = (
            f"{result.source_name} could not list the period's payments: "
            f"{exc.remote_message or exc.message}"
        )
        return result
    finally:
        client.close()
    period_start = datetime.fromtimestamp(gte, tz=timezone.get_current_timezone())
    period_end = datetime.fromtimestamp(lt, tz=timezone.get_current_timezone())
    records = _synced(
        integration,
        {k.split(":", 1)[1] for k in collected},
        period_start - reconciler.margin,
        period_end + reconciler.margin,
    )
    posted = reconciler.posted(
        PostedRecord(r.source_key, r.source_payload or {}, r.sent_payload or {}, r) for r in records
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
                f"Posted in this period for a payment {result.source_name} {result.verb} in "
                "another period.",
                record.pk,
            )
        )
    result.totals = sorted(totals.values(), key=lambda t: t.currency)
    return result
