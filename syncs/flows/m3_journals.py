"""What every flow that writes a payment made outside CloudSuite shares: GL journal lines (the
accounting string of a mapping, the amount exact in the currency), checked against the chart
before any call, and posted through the connection's payment programs (GLS840MI by default)
under a batch key derived from the ledger entry, so an interrupted post is completed, never
doubled."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from connections.providers.infor_m3 import InforM3
from syncs.flows.base import FlowContext, LoadResult, Payload, Posting
from syncs.money import exponent

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AccountCheck:
    """A mapped accounting string (None: none is mapped), whether its account — the first
    dimension — is in CloudSuite's chart, and the account's name there."""

    mapped: str | None
    in_chart: bool
    name: str = ""


def account_check(mapped: str | None, chart: Mapping[str, str]) -> AccountCheck:
    """The mapped accounting string checked against the chart (account → name)."""
    account = str(mapped).split(";")[0] if mapped else ""
    return AccountCheck(mapped, bool(account) and account in chart, chart.get(account, ""))


def account_problem(found: AccountCheck | None, *, label: str, mapping: str) -> str:
    """Why a journal cannot use this account ("" when it can)."""
    if found is None or not found.mapped:
        return f"no GL account is mapped for the {label} (add the mapping {mapping})."
    if not found.in_chart:
        return f"GL account {found.mapped} ({label}) is not in CloudSuite's chart."
    return ""


def journal_line(
    day: str, account: str, currency: str, amount: Decimal, text: str
) -> dict[str, str]:
    """One line: the accounting string ``AIT1;AIT2;…`` split into its dimensions."""
    dims = (str(account).split(";") + [""] * 7)[:7]
    return {
        "ACDT": day,
        **{f"AIT{n}": dim for n, dim in enumerate(dims, start=1)},
        "CUCD": currency,
        "CUAM": str(amount.quantize(Decimal(1).scaleb(-exponent(currency)))),
        "VTXT": text[:40],
    }


def post_journal(
    ctx: FlowContext[Any, InforM3], payload: Payload, posting: Posting | None, *, prefix: str
) -> tuple[str, dict[str, Any]]:
    """Post ``payload.data["lines"]`` as one journal batch; returns (batch key, M3's steps)."""
    assert posting is not None
    m3 = ctx.target
    key = f"{prefix}{posting.ledger_id}G{posting.generation}"
    result = m3.post_journal(
        key=key,
        interface=str(m3.connection.setting("journal_interface")),
        description=payload.data["text"],
        lines=[m3.journal_record(line) for line in payload.data["lines"]],
    )
    return key, result


def journal_result(key: str, result: dict[str, Any], note: str, **summary: Any) -> LoadResult:
    return LoadResult(key, {"journal": key, "steps": result["steps"], **summary}, note)
