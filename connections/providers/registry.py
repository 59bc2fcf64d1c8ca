"""The provider registry: an explicit dict from connection kind to client class."""

from __future__ import annotations

import logging
from typing import Any

from connections.models import Connection
from connections.providers.base import Provider
from connections.providers.infor_m3 import InforM3
from connections.providers.stripe import StripeProvider

logger = logging.getLogger(__name__)

PROVIDERS: dict[str, type[Provider]] = {
    InforM3.kind: InforM3,
    StripeProvider.kind: StripeProvider,
}


def client_for(connection: Connection, **kwargs: Any) -> Provider:
    """The provider client for ``connection``."""
    try:
        cls = PROVIDERS[connection.kind]
    except KeyError:
        raise LookupError(f"No client is registered for {connection.kind} connections.") from None
    return cls(connection, **kwargs)
