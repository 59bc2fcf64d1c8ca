"""Reads for flows and services: webhook events already handled."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from connections.models import Connection
from syncs.models import WebhookEvent

logger = logging.getLogger(__name__)


def webhook_events_processed(
    *, provider: str, connection: Connection, event_ids: Iterable[str]
) -> set[str]:
    """Which of ``event_ids`` a webhook delivery already processed."""
    ids = list(event_ids)
    return (
        set(
            WebhookEvent.objects.filter(
                provider=provider,
                connection=connection,
                event_id__in=ids,
                processed=True,
                signature_valid=True,
            ).values_list("event_id", flat=True)
        )
        if ids
        else set()
    )
