"""Where the registered systems are looked up: filled by ``providers.registry`` when it loads.

The connection model needs the kinds (for its choices) and each kind's spec (for validation
and defaults), but must not import the providers, which import the model: the registry puts
its list here when it is imported (``ConnectionsConfig.ready`` makes sure it is), and the model
only reads it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from connections.providers.base import Provider

logger = logging.getLogger(__name__)

SYSTEMS: dict[str, type[Provider]] = {}


def register(*providers: type[Provider]) -> None:
    """Make these systems known (called once, by the provider registry)."""
    for provider in providers:
        SYSTEMS[provider.kind] = provider


def kind_choices() -> list[tuple[str, str]]:
    """(kind, label) of every registered system, for model and form choices."""
    return [(p.kind, p.label) for p in SYSTEMS.values()]


def provider_class(kind: str) -> type[Provider]:
    """The provider class of ``kind``; ``LookupError`` naming the kind when none is registered."""
    try:
        return SYSTEMS[kind]
    except KeyError:
        raise LookupError(f"No client is registered for {kind} connections.") from None
