"""The one webhook edge: ``POST /webhooks/<system>/<connection-slug>/``.

For every system that sends webhooks: a body over the system's size limit is refused (413)
before anything else is done with it; the system's provider verifies the signature on the raw
body and that it is a well-formed event of that system (400 and nothing stored if not); the
event is stored — once per system, connection and event id — before it is acknowledged, and
processed by a django-q2 task.  A duplicate delivery is acknowledged and not processed again.

Each connection's verifier is kept between deliveries, made again when the connection is saved.
A stored event is acknowledged even when the task queue cannot be reached (the reaper queues it
again); when the database cannot be reached the answer is 503, so the sender retries — never a
500.
"""

from __future__ import annotations

import logging
import threading

from django.db import DatabaseError
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from connections.models import Connection
from connections.providers.base import Provider, WebhookRejected
from connections.providers.registry import SYSTEMS, client_for
from syncs.services import webhook_receive

logger = logging.getLogger(__name__)

KEPT_HEADERS = ("Content-Type", "User-Agent")
MAX_HEADER_CHARS = 1000


_VERIFIERS: dict[tuple[int, object], Provider] = {}  # (connection, its version) → its client
_VERIFIERS_LOCK = threading.Lock()
KEPT_VERIFIERS = 64


def _verifier(connection: Connection) -> Provider:
    """The client that verifies this connection's webhooks, made once per process and per
    version of the connection (any save — a new signing secret — makes a new one), so a
    delivery neither decrypts the credentials nor builds a client.  Verifying uses no network
    and no state, so one client serves every thread."""
    key = (connection.pk, connection.updated_at)
    with _VERIFIERS_LOCK:
        client = _VERIFIERS.get(key)
    if client is None:
        client = client_for(Connection.objects.get(pk=connection.pk))
        with _VERIFIERS_LOCK:
            for old in [k for k in _VERIFIERS if k[0] == connection.pk]:
                _VERIFIERS.pop(old).close()
            while len(_VERIFIERS) >= KEPT_VERIFIERS:
                _VERIFIERS.pop(next(iter(_VERIFIERS))).close()
            _VERIFIERS[key] = client
    return client


def _refuse(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


@csrf_exempt
@require_POST
def webhook(request: HttpRequest, system: str, slug: str) -> JsonResponse:
    try:
        return _webhook(request, system, slug)
    except DatabaseError:
        logger.exception("%s webhook for %s: the database cannot be reached", system, slug)
        response = _refuse(503, "temporarily unavailable; retry later")
        response["Retry-After"] = "30"
        return response


def _webhook(request: HttpRequest, system: str, slug: str) -> JsonResponse:
    provider = SYSTEMS.get(system)
    if provider is None or not provider.sends_webhooks():
        return _refuse(404, "unknown endpoint")
    try:  # the credentials (decrypted on load) only when no verifier of this version is kept
        connection = Connection.objects.defer("credentials").get(slug=slug, kind=system)
    except Connection.DoesNotExist:
        return _refuse(404, "unknown endpoint")
    limit = provider.webhook_max_bytes
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return _refuse(400, "invalid Content-Length")
    if declared > limit:
        logger.warning("%s webhook for %s refused: %d bytes", system, slug, declared)
        return _refuse(413, f"body larger than {limit} bytes")
    raw_body = request.read(limit + 1)
    if len(raw_body) > limit:
        return _refuse(413, f"body larger than {limit} bytes")
    try:
        client = _verifier(connection)
    except Exception:
        logger.exception("%s webhook for %s: the connection cannot be used", system, slug)
        return _refuse(503, "endpoint not ready")
    try:
        event = client.verify_webhook(raw_body, request.headers)
    except WebhookRejected as exc:
        logger.warning("%s webhook for %s refused: %s", system, slug, exc.message)
        return _refuse(exc.status, exc.message)
    kept = (*KEPT_HEADERS, *provider.webhook_headers)
    headers = {h: request.headers[h][:MAX_HEADER_CHARS] for h in kept if h in request.headers}
    _, created = webhook_receive(
        connection=connection,
        event=event,
        raw_body=raw_body.decode("utf-8"),
        headers=headers,
    )
    return JsonResponse({"received": True, "duplicate": not created})
