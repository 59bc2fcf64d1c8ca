"""Services for connections: re-encrypting every secret with the first Fernet key."""

from __future__ import annotations

import logging

from django.db import transaction

from connections.models import Connection, OAuthToken

logger = logging.getLogger(__name__)


def secrets_reencrypt() -> dict[str, int]:
    """Rewrite every encrypted column with the first key of ``FERNET_KEYS``.

    Run after putting a new key first: once it has run, the old keys can be removed.
    """
    counts = {"connections": 0, "oauth_tokens": 0}
    with transaction.atomic():
        for connection in Connection.objects.select_for_update().order_by("pk"):
            connection.save(update_fields=["credentials"])
            counts["connections"] += 1
        for token in OAuthToken.objects.select_for_update().order_by("pk"):
            token.save(update_fields=["access_token", "refresh_token"])
            counts["oauth_tokens"] += 1
    logger.info("Re-encrypted %s", counts)
    return counts
