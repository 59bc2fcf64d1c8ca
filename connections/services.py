"""Services for connections: testing a connection, re-encrypting secrets with the first key."""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from connections.models import Connection, OAuthToken
from connections.providers.base import CheckResult
from connections.providers.errors import ApiError
from connections.redaction import Redactor

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


def connection_check(*, connection: Connection) -> CheckResult:
    """Authenticate against the remote and record the outcome on the connection."""
    from connections.providers.registry import client_for

    try:
        result = client_for(connection).check()
    except LookupError as exc:
        result = CheckResult(False, str(exc))
    except ApiError as exc:
        result = CheckResult(False, exc.message)
    except Exception as exc:
        logger.exception("Checking %s failed", connection.slug)
        result = CheckResult(False, f"{type(exc).__name__}: {exc}")
    redact = Redactor(connection.secret_values())
    message = redact.text("\n".join([result.message, *result.details]))[:4000]
    Connection.objects.filter(pk=connection.pk).update(
        status=Connection.Status.OK if result.ok else Connection.Status.FAILING,
        last_checked_at=timezone.now(),
        last_check_message=message,
    )
    return CheckResult(
        result.ok, redact.text(result.message), [redact.text(d) for d in result.details]
    )
