"""Stripe webhook verification: ``Stripe-Signature`` on the raw body, then the event's shape.

``Stripe-Signature: t=…,v1=…[,v1=…]`` is checked by the official library (HMAC-SHA256 of
``"{t}.{body}"`` with the endpoint's ``whsec_`` secret, any ``v1`` may match, 300 s tolerance).
A validly signed body must also be a Stripe event — ``object: "event"``, an ``evt_`` id, a type,
a ``created`` time and ``data.object`` — or it is refused and never stored.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime

import stripe

from connections.providers import shapes
from connections.providers.base import (
    InboundEvent,
    WebhookRejected,
    bounded_text,
    parse_json_object,
)
from connections.providers.shapes import ListOf, Shape

logger = logging.getLogger(__name__)

TOLERANCE_SECONDS = 300
WHAT = "a Stripe event"

# data.object of the event types the flows read, as far as they read it (Stripe's API reference,
# "The Event object", "The PaymentIntent object", "The Charge object", "The Dispute object",
# "The Invoice object", "The Payout object"). Other types pass with an id alone.
_ID = shapes.text(255)
_LINK = shapes.nullable(shapes.text(255))  # an expandable reference: an id, or null
_BASE = {"id": _ID, "metadata": shapes.text_map}
OBJECT_SHAPES: dict[str, Shape] = {
    "payment_intent.succeeded": Shape(
        {
            **_BASE,
            "amount": shapes.amount,
            "amount_received": shapes.amount,
            "currency": shapes.currency,
            "latest_charge": _LINK,
        },
        required=("id",),
    ),
    "charge.succeeded": Shape({**_BASE, "payment_intent": _LINK}, required=("id",)),
    "charge.refunded": Shape(
        {
            **_BASE,
            "payment_intent": _LINK,
            "refunds": Shape(
                {
                    "data": ListOf(
                        Shape(
                            {"id": _ID, "status": shapes.text(40), "amount": shapes.amount},
                            required=("id",),
                        )
                    ),
                    "has_more": shapes.flag,
                }
            ),
        },
        required=("id",),
    ),
    "charge.dispute.created": Shape(
        {**_BASE, "amount": shapes.amount, "currency": shapes.currency, "payment_intent": _LINK},
        required=("id", "amount", "currency"),
    ),
    "invoice.paid": Shape(_BASE, required=("id",)),
    "payout.paid": Shape(
        {
            **_BASE,
            "amount": shapes.signed_amount,
            "currency": shapes.currency,
            "arrival_date": shapes.epoch,
        },
        required=("id", "amount", "currency"),
    ),
}
ANY_OBJECT = Shape({"id": _ID}, required=("id",))


def verify(secret: str | None, raw_body: bytes, headers: Mapping[str, str]) -> InboundEvent:
    """The event in ``raw_body`` if it is signed with ``secret``; ``WebhookRejected`` if not."""
    if not secret:
        raise WebhookRejected(
            "This endpoint has no signing secret yet: add it to the connection.", status=400
        )
    signature = headers.get("Stripe-Signature") or ""
    try:
        text = raw_body.decode("utf-8")
        stripe.WebhookSignature.verify_header(text, signature, secret, TOLERANCE_SECONDS)
    except (stripe.SignatureVerificationError, UnicodeDecodeError, ValueError):
        raise WebhookRejected("Invalid or expired Stripe-Signature.") from None
    event = parse_json_object(raw_body, what=WHAT)
    if event.get("object") != "event":
        raise WebhookRejected(f"This is not {WHAT} (object is not “event”).")
    event_id = bounded_text(event.get("id"), limit=255, name="event id", what=WHAT)
    if not event_id.startswith("evt_"):
        raise WebhookRejected(f"The event id does not start with evt_, so this is not {WHAT}.")
    event_type = bounded_text(event.get("type"), limit=120, name="event type", what=WHAT)
    created = event.get("created")
    if shapes.epoch(created):  # a time from 2000 to a day ahead: never a year past 9999
        raise WebhookRejected(f"The event has no valid created time, so it is not {WHAT}.")
    data = event.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        raise WebhookRejected(f"The event carries no data.object, so it is not {WHAT}.")
    shape = OBJECT_SHAPES.get(event_type, ANY_OBJECT)
    if reason := shapes.problem(data["object"], shape, "data.object."):
        raise WebhookRejected(f"This {event_type} event cannot be read: {reason}.")
    return InboundEvent(
        id=event_id,
        type=event_type,
        occurred_at=datetime.fromtimestamp(created, tz=UTC),
        payload=event,
    )
