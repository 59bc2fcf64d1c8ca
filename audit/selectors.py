"""Reads of the audit tables for flows and services (writes belong to the runner)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from audit.models import PostingLedger

logger = logging.getLogger(__name__)


def ledger_confirmed_keys(*, connection_id: int, target: str, keys: Iterable[str]) -> set[str]:
    """Which of ``keys`` are already posted (confirmed) to this target connection."""
    wanted = list(keys)
    confirmed: set[str] = set()
    for start in range(0, len(wanted), 500):
        confirmed |= set(
            PostingLedger.objects.filter(
                connection_id=connection_id,
                target=target,
                natural_key__in=wanted[start : start + 500],
                state=PostingLedger.State.CONFIRMED,
            ).values_list("natural_key", flat=True)
        )
    return confirmed


def ledger_confirmed_under(*, connection_id: int, target: str, prefix: str) -> dict[str, str]:
    """The confirmed keys starting with ``prefix`` on this target connection, with the remote
    id of each (what an earlier post made: a recipient that is to be replaced, say)."""
    return dict(
        PostingLedger.objects.filter(
            connection_id=connection_id,
            target=target,
            natural_key__startswith=prefix,
            state=PostingLedger.State.CONFIRMED,
        ).values_list("natural_key", "remote_id")
    )


def ledger_known_keys(*, connection_id: int, target: str, keys: Iterable[str]) -> set[str]:
    """Which of ``keys`` are posted or being posted (confirmed or pending) to this connection."""
    wanted = list(keys)
    return set(
        PostingLedger.objects.filter(
            connection_id=connection_id,
            target=target,
            natural_key__in=wanted,
            state__in=(PostingLedger.State.CONFIRMED, PostingLedger.State.PENDING),
        ).values_list("natural_key", flat=True)
    )
