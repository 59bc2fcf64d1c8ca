"""The Stripe webhook endpoint: ``/webhooks/stripe/<connection-slug>/``.

``Stripe-Signature: t=…,v1=…[,v1=…]`` is verified on the raw body with the connection's
endpoint secret (HMAC-SHA256 of ``"{t}.{body}"``, any ``v1`` may match, 300 s tolerance) by the
official library.  A bad or stale signature is answered 400 and nothing is stored; a valid event
is stored before it is acknowledged and processed by a django-q2 task; a duplicate delivery is
acknowledged and not processed again.
"""

from __future__ import annotations

import json
import logging

import stripe
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from connections.models import Connection
from syncs.services import webhook_receive

logger = logging.getLogger(__name__)

TOLERANCE_SECONDS = 300
KEPT_HEADERS = ("Stripe-Signature", "Content-Type", "User-Agent")


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest, slug: str) -> JsonResponse:
    connection = Connection.objects.filter(slug=slug, kind=Connection.Kind.STRIPE).first()
    if connection is None:
        return JsonResponse({"error": "unknown endpoint"}, status=404)
    secret = (connection.credentials or {}).get("webhook_secret")
    if not secret:
        return JsonResponse({"error": "no webhook secret configured"}, status=400)
    body = request.body
    try:
        stripe.WebhookSignature.verify_header(
            body.decode("utf-8"),
            request.headers.get("Stripe-Signature", ""),
            secret,
            TOLERANCE_SECONDS,
        )
        event = json.loads(body)
        event_id, event_type = str(event["id"]), str(event.get("type", ""))
    except (
        stripe.SignatureVerificationError,
        UnicodeDecodeError,
        ValueError,
        KeyError,
        TypeError,
    ) as exc:
        logger.warning("Stripe webhook for %s refused: %s", slug, type(exc).__name__)
        return JsonResponse({"error": "invalid signature or payload"}, status=400)
    headers = {h: request.headers[h] for h in KEPT_HEADERS if h in request.headers}
    _, created = webhook_receive(
        provider="stripe",
        connection=connection,
        event_id=event_id,
        event_type=event_type,
        raw_body=body.decode("utf-8"),
        headers=headers,
    )
    return JsonResponse({"received": True, "duplicate": not created})
