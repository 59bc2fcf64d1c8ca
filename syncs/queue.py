"""The review queue grouped by problem: the items one fix settles together (one mapping missing
for five payments) as one line with their count, their amounts per currency and the fix; the
rest by integration and kind of problem.  A read-only selector over the queue's rows."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.db.models import Q

from audit.models import AuditRecord
from syncs import display
from syncs.mappings import mapping_kind_label

logger = logging.getLogger(__name__)

Status = AuditRecord.Status
SHOWN_PER_GROUP = 20


def kind_of_problem(record: AuditRecord) -> str:
    """What a person does about an item: add a mapping, decide, wait for a retry, or fix."""
    if record.status == Status.FLAGGED:
        return "mapping" if record.fix_kind else "decide"
    return "retry" if record.retryable else "failed"


# The same rule as a query, for the queue's filter.
PROBLEM_QUERIES = {
    "mapping": Q(status=Status.FLAGGED) & ~Q(fix_kind=""),
    "decide": Q(status=Status.FLAGGED, fix_kind=""),
    "retry": Q(status=Status.FAILED, retryable=True),
    "failed": Q(status=Status.FAILED, retryable=False),
}


PROBLEM_KINDS = {
    "mapping": "Needs a mapping",
    "decide": "Needs a decision",
    "retry": "Failed, retried by itself",
    "failed": "Failed: its cause needs fixing",
}


def _things(stream: str, n: int) -> str:
    """``5 payments``, ``1 payment`` (streams are named in the plural)."""
    noun = stream.replace("_", " ")
    return f"{n} {noun[:-1] if n == 1 and noun.endswith('s') else noun}"


@dataclass
class Group:
    """Queue items one action settles, or of one kind in one integration."""

    key: tuple[Any, ...]
    integration: Any
    stream: str
    kind: str
    fix_kind: str = ""
    fix_value: str = ""
    items: list[AuditRecord] = field(default_factory=list)
    totals: dict[str, Decimal] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.items)

    @property
    def title(self) -> str:
        """``5 payments need a GL account mapping for “stripe_receipts:GBP”``."""
        things = _things(self.stream, self.count)
        verb = "needs" if self.count == 1 else "need"
        if self.kind == "mapping":
            label = mapping_kind_label(self.fix_kind)
            return f"{things} {verb} a {label} mapping for “{self.fix_value}”"
        if self.kind == "decide":
            return f"{things} {verb} a decision"
        return f"{things}: {PROBLEM_KINDS[self.kind].lower()}"

    @property
    def amounts(self) -> str:
        """The group's amounts per currency (``8,133.74 GBP · 12.00 EUR``)."""
        return " · ".join(
            display.amount_text(total, currency) for currency, total in sorted(self.totals.items())
        )

    @property
    def shown(self) -> list[AuditRecord]:
        return self.items[:SHOWN_PER_GROUP]

    @property
    def query(self) -> str:
        """The queue filtered to this group."""
        params = {"integration__id__exact": self.integration.pk}
        if self.kind == "mapping":
            params |= {"fix_kind__exact": self.fix_kind, "fix_value__exact": self.fix_value}
        else:
            params |= {"problem": self.kind}
        return "?" + urlencode(params)


def groups(items: Iterable[AuditRecord]) -> list[Group]:
    """The items grouped by what settles them, biggest groups first (then oldest)."""
    found: dict[tuple[Any, ...], Group] = {}
    for item in items:
        kind = kind_of_problem(item)
        if kind == "mapping":
            key: tuple[Any, ...] = (item.integration_id, kind, item.fix_kind, item.fix_value)
        else:
            key = (item.integration_id, kind, item.stream)
        group = found.get(key)
        if group is None:
            group = found[key] = Group(
                key,
                item.integration,
                item.stream,
                kind,
                fix_kind=item.fix_kind if kind == "mapping" else "",
                fix_value=item.fix_value if kind == "mapping" else "",
            )
        group.items.append(item)
        if item.amount is not None:
            currency = item.currency or "?"
            group.totals[currency] = group.totals.get(currency, Decimal(0)) + item.amount
    return sorted(found.values(), key=lambda g: (-g.count, g.items[0].pk))
