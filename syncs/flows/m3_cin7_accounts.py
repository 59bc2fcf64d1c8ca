"""A check: CloudSuite's chart of accounts against Cin7 Core's, for review.

Cin7's chart is effectively read-only for an integration, so nothing is created there and this
is a ``Check``, not a flow that posts: each CloudSuite account (CRS630MI, dimension 1) is looked
for in Cin7's chart (``/ref/account``) — through its ``cin7_account`` mapping, or by the same
code — and one Cin7 does not have is put in the review queue with what to do (add it in Cin7, or
map it to an account Cin7 has).  Accounts that match need nothing and add no audit row; a flag
already waiting is noted as seen again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from connections.providers.cin7 import Cin7Core
from connections.providers.infor_m3 import InforM3
from syncs.flows import kinds
from syncs.flows.base import (
    Check,
    Flag,
    FlowContext,
    Lookups,
    Mappings,
    Skip,
    SourceRecord,
    Summary,
    lookups_of,
)

logger = logging.getLogger(__name__)

Context = FlowContext[InforM3, Cin7Core]


def cin7_account(code: str, mappings: Mappings) -> str:
    """The Cin7 account a CloudSuite account posts to: its mapping, or the same code."""
    return mappings.get("cin7_account", code) or code


@dataclass(frozen=True)
class InCin7(Lookups):
    """Whether Cin7's chart has the account a CloudSuite account posts to, as it is now."""

    account: str
    present: bool


class M3ChartAgainstCin7(Check[InforM3, Cin7Core]):
    key = "m3_cin7.accounts"
    label = "CloudSuite chart of accounts ↔ Cin7 Core chart (check)"
    source_kind = "infor_m3"
    target_kind = "cin7"
    stream = "accounts"
    posting_name = "the account"
    mapping_kinds = (kinds.CIN7_ACCOUNT,)
    lookups = InCin7

    def extract(self, ctx: Context) -> Iterator[SourceRecord]:
        cin7 = self.chart(ctx.target)
        for account in ctx.source.list_accounts():
            code = str(account.get("AITM") or "")
            if code and cin7_account(code, ctx.mappings) not in cin7:
                yield SourceRecord(code, {"m3": account})

    def prepare(self, ctx: Context, record: SourceRecord) -> InCin7:
        """Whether Cin7's chart has the account now (a replay after a mapping was added)."""
        wanted = cin7_account(record.source_key, ctx.mappings)
        return InCin7(wanted, wanted in self.chart(ctx.target))

    def summary(self, record: SourceRecord) -> Summary:
        return Summary(document=f"account {record.source_key}")

    def examine(self, record: SourceRecord, mappings: Mappings) -> Flag | Skip:
        m3: dict[str, Any] = record.data["m3"]
        found = lookups_of(record, InCin7)
        code, wanted = record.source_key, found.account
        if found.present:
            return Skip(f"CloudSuite account {code} now posts to Cin7 account {wanted}.")
        what = f"CloudSuite account {code} ({m3.get('TX40') or 'no name'})"
        if wanted != code:
            problem = f"{what} is mapped to Cin7 account {wanted}, which Cin7's chart lacks"
        else:
            problem = f"{what} has no account of that code in Cin7's chart"
        return Flag(
            f"{problem}. Cin7's chart is read-only for ml-connector: add the account in Cin7, or "
            "map the CloudSuite account to one Cin7 has (a cin7_account mapping), then replay.",
            fix=("cin7_account", code),
        )
