"""What a system can do beyond its own API, declared as protocols its client implements.

Generic code (the mapping check, the admin, reconciliation, key rotation) asks the registry
whether a kind of connection has a capability (``registry.capable(kind, ChartOfAccounts)``) and
then calls it; it never compares a kind with a system's name.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

logger = logging.getLogger(__name__)


@runtime_checkable
class ChartOfAccounts(Protocol):
    """The system keeps a chart of accounts a mapping's account must be in."""

    def chart_of_accounts(self) -> dict[str, str]:
        """Every account of the chart (its first dimension), with its name."""
        ...


@runtime_checkable
class SupplierDirectory(Protocol):
    """The system keeps suppliers a mapping may name."""

    def suppliers_found(self, numbers: Sequence[str]) -> set[str]:
        """Which of these supplier numbers the system holds."""
        ...


@runtime_checkable
class LinksToRecords(Protocol):
    """The system has pages where a person acts on a record (answers a dispute, refunds a
    payment): a review item links there."""

    @classmethod
    def record_page(cls, connection: Any, kind: str, record_id: str) -> tuple[str, str] | None:
        """(label, address) of the page for this kind of record on ``connection``'s account;
        None when there is none (or the connection is a sandbox)."""
        ...


class RotatedSecretUnreadable(ValueError):
    """The system made a new key but its secret cannot be read (message safe to show)."""


@runtime_checkable
class RotatesKeys(Protocol):
    """The system can replace the connection's secret key with a new one, the old one working
    for a grace period (``connections.services.key_rotate`` runs it, on a schedule)."""

    def key_rotation_policy(self) -> tuple[str, int | None, int]:
        """(the current key's id, rotate every so many days or None, grace minutes)."""
        ...

    def new_rotation_secret(self) -> str:
        """A one-off private key the new secret is sealed to (kept until it is read)."""
        ...

    def rotate_key(
        self, key_id: str, *, grace_minutes: int, sealed_to: str, label: str, idempotency_key: str
    ) -> tuple[str, str]:
        """Rotate key ``key_id``: (the new key's id, its secret).  The same idempotency key
        after a lost answer asks for the same rotation again.  ``RotatedSecretUnreadable`` when
        the new secret cannot be read."""
        ...

    def key_works(self, secret: str) -> bool:
        """Whether the system accepts ``secret``."""
        ...

    def rotated_values(self, key_id: str, secret: str) -> tuple[dict[str, str], dict[str, str]]:
        """What to store once a new key works: (credentials, settings) to update."""
        ...
