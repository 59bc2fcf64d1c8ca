"""A flow's typed view of the posting ledger during a run (``ctx.ledger``): which keys are
confirmed, which are known (confirmed or being posted by some worker), and which things of a
kind a connection of the integration holds."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from audit.selectors import ledger_confirmed_keys, ledger_confirmed_under, ledger_known_keys
from syncs.flows.keys import Thing

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunLedger:
    """The ledger of one integration's run: its flow's postings (``target``, on the target
    connection), and any thing on either of its connections."""

    source_id: int
    target_id: int
    target: str  # the flow's ledger target, e.g. "m3.receipt"

    def confirmed(self, keys: Iterable[str]) -> set[str]:
        keys = list(keys)
        if not keys:
            return set()
        return ledger_confirmed_keys(connection_id=self.target_id, target=self.target, keys=keys)

    def known(self, keys: Iterable[str]) -> set[str]:
        keys = list(keys)
        if not keys:
            return set()
        return ledger_known_keys(connection_id=self.target_id, target=self.target, keys=keys)

    def under(self, thing: Thing, *values: Any, side: str = "target") -> dict[str, str]:
        return ledger_confirmed_under(
            connection_id=self.source_id if side == "source" else self.target_id,
            target=thing.target,
            prefix=thing.under(*values) if values else f"{thing.prefix}:",
        )
