"""Wise webhooks are RSA-SHA256 signatures of the raw bytes with Wise's published key: the
published sandbox example verifies, and the same body with one byte changed does not."""

from __future__ import annotations

import json

import pytest

from connections.models import Connection
from connections.providers.base import WebhookRejected
from connections.providers.registry import client_for
from connections.providers.wise import webhooks

# Wise's own example delivery, signed with its sandbox key (Wise's public signature examples).
BODY = (
    b'{"data":{"resource":{"id":49983981,"profile_id":16055450,"account_id":14124090,'
    b'"type":"transfer"},"current_state":"incoming_payment_waiting","previous_state":null,'
    b'"occurred_at":"2021-08-23T10:12:50Z"},"subscription_id":"90aa8e14-4ef1-4a56-861c-'
    b'f3c9cde097ea","event_type":"transfers#state-change","schema_version":"2.0.0",'
    b'"sent_at":"2021-08-23T10:12:50Z"}'
)
SIGNATURE = (
    "wKcKCYXAzxNgiu7xmoDm943NUni7Rz33QN8JkEA9dWSGebgndonabgSj18Y4C08OrwVmueGsED2s00M7DtJVcYKOS1i3"
    "G4TMVx+mgM3aL9djMBkQtiYNBFUd6wrPI7ZUNHv/TrlKSjTMc+6JFvUvJ7owY3z85e3I4jLRLJowMFvO8kvCJ60+1pY9"
    "wDwZvtZ//WS93LrwGjk9Dvwzpmu0w+P4J75tETT5qC3Uv0y5G2yO8SEoO3yNP/tg/BOli02niHb53vEOUWUb9bly6thn"
    "fMoXoiV/osoGxgF20R58RlvkAmezyyl1Sv542TfS2DpiwVnmjjjkCyXeSUcKookYLQ=="
)
HEADERS = {"X-Signature-SHA256": SIGNATURE, "X-Delivery-Id": "2b4d9a3e-0000-4000-8000-1"}


@pytest.fixture
def sandbox_wise(make_connection) -> Connection:  # type: ignore[no-untyped-def]
    """A connection to Wise's sandbox environment, trusting Wise's published sandbox key."""
    conn = make_connection("wise", slug="wise-published")
    conn.settings.pop("webhook_public_key", None)
    conn.save()
    return conn


def test_wises_published_sandbox_example_verifies(sandbox_wise: Connection) -> None:
    event = client_for(sandbox_wise).verify_webhook(BODY, HEADERS)
    assert event.id.startswith("wise-event:") and event.type == "transfers#state-change"
    assert event.occurred_at.isoformat() == "2021-08-23T10:12:50+00:00"
    assert event.payload["data"]["resource"]["id"] == 49983981


@pytest.mark.parametrize("where", [0, 60, len(BODY) - 2])
def test_one_byte_changed_is_refused(sandbox_wise: Connection, where: int) -> None:
    changed = bytearray(BODY)
    changed[where] = (changed[where] + 1) % 256
    with pytest.raises(WebhookRejected) as refused:
        client_for(sandbox_wise).verify_webhook(bytes(changed), HEADERS)
    assert refused.value.status == 400


def test_the_live_key_does_not_accept_a_sandbox_delivery(sandbox_wise: Connection) -> None:
    sandbox_wise.settings["environment"] = "live"
    with pytest.raises(WebhookRejected):
        client_for(sandbox_wise).verify_webhook(BODY, HEADERS)
    assert webhooks.PUBLISHED_KEYS["live"] != webhooks.PUBLISHED_KEYS["sandbox"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Signature-SHA256": "not base64!"},
        {"X-Signature-SHA256": SIGNATURE[:-8] + "AAAAAA=="},
        {"X-Signature-SHA256": ""},
    ],
)
def test_missing_or_bad_signatures_are_refused(sandbox_wise: Connection, headers: dict) -> None:
    with pytest.raises(WebhookRejected):
        client_for(sandbox_wise).verify_webhook(BODY, headers)


def test_an_event_is_known_by_its_body_not_its_delivery_id(sandbox_wise: Connection) -> None:
    """The signature does not cover X-Delivery-Id: the same body under another delivery id, or
    none, is the same event."""
    client = client_for(sandbox_wise)
    event = client.verify_webhook(BODY, HEADERS)
    other = client.verify_webhook(BODY, {**HEADERS, "X-Delivery-Id": "ffffffff-resent"})
    bare = client.verify_webhook(BODY, {"x-signature-sha256": SIGNATURE})
    assert event.id == other.id == bare.id


def test_the_identity_leaves_out_only_the_sending_time() -> None:
    event = json.loads(BODY)
    resent = {**event, "sent_at": "2030-01-01T00:00:00Z"}
    moved = json.loads(BODY)
    moved["data"]["current_state"] = "outgoing_payment_sent"
    assert webhooks.event_identity(event) == webhooks.event_identity(resent)
    assert webhooks.event_identity(event) != webhooks.event_identity(moved)


def test_a_signed_body_that_is_not_an_event_is_refused(wise_sim, wise_connection) -> None:  # type: ignore[no-untyped-def]
    for body in (b"[1, 2]", json.dumps({"event_type": "x"}).encode(), b"\xff\xfe"):
        headers = {"X-Signature-SHA256": wise_sim.app.sign(body)}
        with pytest.raises(WebhookRejected):
            client_for(wise_connection).verify_webhook(body, headers)
