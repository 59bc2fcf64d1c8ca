"""The one list of systems ml-connector can connect to.

Adding a system is a package under ``connections/providers/<system>/`` plus one line in
``PROVIDERS``.  Everything else derives from this list: the connection kinds (and so the admin's
"choose the system" page, which offers only systems that have a client), the credential and
settings forms, the OAuth wiring (a provider's ``grant()``), the secret shapes redaction knows,
and the webhook routes (``/webhooks/<kind>/<connection-slug>/`` for providers that verify them).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from connections import redaction, systems
from connections.providers.base import Provider
from connections.providers.cin7 import Cin7Core
from connections.providers.ifs_cloud import IfsCloud
from connections.providers.infor_m3 import InforM3
from connections.providers.stampli import StampliSftp
from connections.providers.stripe import StripeProvider
from connections.providers.wise import WiseProvider

if TYPE_CHECKING:
    from connections.models import Connection

logger = logging.getLogger(__name__)

PROVIDERS: tuple[type[Provider], ...] = (
    InforM3,
    StripeProvider,
    IfsCloud,
    WiseProvider,
    StampliSftp,
    Cin7Core,
)

systems.register(*PROVIDERS)
SYSTEMS = systems.SYSTEMS
kind_choices = systems.kind_choices
provider_class = systems.provider_class

for _provider in PROVIDERS:
    redaction.register(patterns=_provider.secret_patterns, keys=_provider.secret_keys)


def client_for(connection: Connection, **kwargs: Any) -> Provider:
    """The provider client for ``connection``."""
    return provider_class(connection.kind)(connection, **kwargs)


def capable(kind: str, capability: type) -> bool:
    """Whether connections of ``kind`` have ``capability`` (a protocol of ``capabilities``)."""
    provider = SYSTEMS.get(kind)
    return provider is not None and issubclass(provider, capability)


def webhook_systems() -> list[type[Provider]]:
    """The systems that send webhooks (each has a route and a verifier)."""
    return [p for p in SYSTEMS.values() if p.sends_webhooks()]
