"""What a system can do beyond its own API, declared as protocols its client implements.

Generic code (the mapping check, the admin, reconciliation, key rotation) asks the registry
whether a kind of connection has a capability (``registry.capable(kind, ChartOfAccounts)``) and
then calls it; it never compares a kind with a system's name.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

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
