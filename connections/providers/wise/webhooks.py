"""Wise webhook verification: an RSA-SHA256 (PKCS#1 v1.5) signature of the raw body, base64 in
``X-Signature-SHA256``, checked with Wise's public key — never an HMAC — then the event's shape.

Wise's published keys for the sandbox and live environments are the defaults (a connection may
override its key).  The event id is the event's own identity, never the delivery's: the
signature covers the body but not ``X-Delivery-Id``, so the same event re-sent under a new
delivery id (or with a new ``sent_at``, the time of sending) must be recognised as the same.  It
is the SHA-256 of the body's canonical JSON (sorted keys, no spacing) without ``sent_at``:
subscription, event type, resource, states and ``occurred_at`` all count.  When the event
happened is ``data.occurred_at`` (``sent_at`` when a schema lacks it).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from connections.providers import shapes
from connections.providers.base import (
    InboundEvent,
    WebhookRejected,
    bounded_text,
    parse_json_object,
)
from connections.providers.shapes import Shape

logger = logging.getLogger(__name__)

WHAT = "a Wise event"


def _resource_id(value: object) -> str:
    """Wise's ids are numbers (``"id": 111`` in its examples); a digit string is read alike."""
    if isinstance(value, str) and value.isdigit() and len(value) <= 19:
        return ""
    return shapes.whole(1, 2**63 - 1)(value)


# data of the event types the flows read (Wise's webhook reference, "Transfer state change
# event": resource {type, id, profile_id, account_id}, current_state, previous_state,
# occurred_at). Other types pass as they are.
DATA_SHAPES: dict[str, Shape] = {
    "transfers#state-change": Shape(
        {
            "resource": Shape(
                {"type": shapes.text(40), "id": _resource_id}, required=("type", "id")
            ),
            "current_state": shapes.text(60),
            "previous_state": shapes.nullable(shapes.text(60)),
            "occurred_at": shapes.text(40),
        },
        required=("resource",),
    ),
}
# Wise's published webhook signing keys (docs.wise.com, Webhooks > Event handling).
PUBLISHED_KEYS = {
    "live": """-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAvO8vXV+JksBzZAY6GhSO
XdoTCfhXaaiZ+qAbtaDBiu2AGkGVpmEygFmWP4Li9m5+Ni85BhVvZOodM9epgW3F
bA5Q1SexvAF1PPjX4JpMstak/QhAgl1qMSqEevL8cmUeTgcMuVWCJmlge9h7B1CS
D4rtlimGZozG39rUBDg6Qt2K+P4wBfLblL0k4C4YUdLnpGYEDIth+i8XsRpFlogx
CAFyH9+knYsDbR43UJ9shtc42Ybd40Afihj8KnYKXzchyQ42aC8aZ/h5hyZ28yVy
Oj3Vos0VdBIs/gAyJ/4yyQFCXYte64I7ssrlbGRaco4nKF3HmaNhxwyKyJafz19e
HwIDAQAB
-----END PUBLIC KEY-----
""",
    "sandbox": """-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAwpb91cEYuyJNQepZAVfP
ZIlPZfNUefH+n6w9SW3fykqKu938cR7WadQv87oF2VuT+fDt7kqeRziTmPSUhqPU
ys/V2Q1rlfJuXbE+Gga37t7zwd0egQ+KyOEHQOpcTwKmtZ81ieGHynAQzsn1We3j
wt760MsCPJ7GMT141ByQM+yW1Bx+4SG3IGjXWyqOWrcXsxAvIXkpUD/jK/L958Cg
nZEgz0BSEh0QxYLITnW1lLokSx/dTianWPFEhMC9BgijempgNXHNfcVirg1lPSyg
z7KqoKUN0oHqWLr2U1A+7kqrl6O2nx3CKs1bj1hToT1+p4kcMoHXA7kA+VBLUpEs
VwIDAQAB
-----END PUBLIC KEY-----
""",
}
SIGNATURE_HEADER = "X-Signature-SHA256"
DELIVERY_HEADER = "X-Delivery-Id"


@functools.lru_cache(maxsize=16)
def _load(pem: str) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("not an RSA public key")
    return key


def _moment(value: object) -> datetime | None:
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        seconds = moment.timestamp()  # in range as UTC too (9999-12-31T23:00-05:00 is not)
    except (ValueError, OverflowError):
        return None
    return None if shapes.epoch(int(seconds)) else moment


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    return ""


def verify(public_pem: str, raw_body: bytes, headers: Mapping[str, str]) -> InboundEvent:
    """The event in ``raw_body`` if Wise signed it with the key ``public_pem`` belongs to."""
    signature = _header(headers, SIGNATURE_HEADER).strip()
    if not signature:
        raise WebhookRejected(f"No {SIGNATURE_HEADER} header: not a signed Wise delivery.")
    try:
        decoded = base64.b64decode(signature, validate=True)
        _load(public_pem).verify(decoded, raw_body, padding.PKCS1v15(), hashes.SHA256())
    except (binascii.Error, ValueError, InvalidSignature):
        raise WebhookRejected(f"The {SIGNATURE_HEADER} signature does not match.") from None
    event = parse_json_object(raw_body, what=WHAT)
    event_type = bounded_text(event.get("event_type"), limit=120, name="event type", what=WHAT)
    data = event.get("data")
    if not isinstance(data, dict):
        raise WebhookRejected(f"The event carries no data object, so it is not {WHAT}.")
    if event_type in DATA_SHAPES and (
        reason := shapes.problem(data, DATA_SHAPES[event_type], "data.")
    ):
        raise WebhookRejected(f"This {event_type} event cannot be read: {reason}.")
    occurred = _moment(data.get("occurred_at")) or _moment(event.get("sent_at"))
    if occurred is None:
        raise WebhookRejected(f"The event has no valid occurred_at or sent_at, so not {WHAT}.")
    delivery = _header(headers, DELIVERY_HEADER).strip()
    if delivery:
        bounded_text(delivery, limit=100, name="delivery id", what=WHAT)
    return InboundEvent(
        id=event_identity(event), type=event_type, occurred_at=occurred, payload=event
    )


def event_identity(event: dict[str, object]) -> str:
    """The same event however often and under whatever delivery id it is sent."""
    content = {k: v for k, v in event.items() if k != "sent_at"}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "wise-event:" + hashlib.sha256(canonical.encode()).hexdigest()
