"""The Stripe simulator's shared pieces: its object templates and limits, ids, form bodies,
signatures, errors and webhook delivery."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import requests
from werkzeug.wrappers import Response

from connections.sandbox.base import json_response

logger = logging.getLogger(__name__)

TEMPLATES: dict[str, Any] = json.loads(
    (Path(__file__).parent.parent / "data" / "stripe-objects.json").read_text()
)["resources"]
API_VERSION = "2025-03-31.basil"
MAX_KEY_GRACE_MINUTES = 10080
EVENTS_REACH_SECONDS = 30 * 24 * 3600
PREFIX = {
    "customer": "cus",
    "invoice": "in",
    "invoiceitem": "ii",
    "charge": "ch",
    "payment_intent": "pi",
    "refund": "re",
    "dispute": "dp",
    "event": "evt",
    "balance_transaction": "txn",
    "invoice_payment": "inpay",
    "payout": "po",
    "price": "price",
    "product": "prod",
}


def base64_url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def stripe_id(kind: str) -> str:
    return f"{PREFIX[kind]}_{secrets.token_hex(7)}"


def parse_form(body: str) -> dict[str, Any]:
    """Stripe's nested form encoding: ``metadata[k]=v``, ``types[0]=x``, ``expand[]=x``,
    ``lines[0][amount]=5``, ``lines[0][metadata][k]=v``."""
    out: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        parts = re.findall(r"[^\[\]]+|\[\]", key)
        if not parts:
            continue
        target: dict[str, Any] = out
        for i, part in enumerate(parts[:-1]):
            if parts[i + 1] == "[]":
                target.setdefault(part, {})
                part_list = target[part]
                if isinstance(part_list, dict):
                    part_list[str(len(part_list))] = value
                break
            nested = target.setdefault(part, {})
            if not isinstance(nested, dict):
                break
            target = nested
        else:
            target[parts[-1]] = value
    return _lists(out)


def _lists(value: Any) -> Any:
    """Dicts keyed 0, 1, 2… (how the form encodes arrays) become lists, in index order."""
    if not isinstance(value, dict):
        return value
    converted = {k: _lists(v) for k, v in value.items()}
    if converted and all(k.isdigit() for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted


def sign(payload: str, secret: str, timestamp: int | None = None) -> str:
    """A ``Stripe-Signature`` header value for ``payload``."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


class StripeError(Exception):
    def __init__(
        self,
        status: int,
        kind: str,
        message: str,
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.kind, self.message, self.param, self.code = (
            status,
            kind,
            message,
            param,
            code,
        )

    def response(self) -> Response:
        error = {"type": self.kind, "message": self.message}
        if self.param:
            error["param"] = self.param
        if self.code:
            error["code"] = self.code
        return json_response({"error": error}, self.status)


class WebhookDelivery:
    """Delivers events to registered endpoints, optionally duplicating, reordering, dropping."""

    def __init__(self) -> None:
        self.endpoints: list[dict[str, str]] = []
        self.duplicate = False
        self.reorder = False
        self.drop_next = 0
        self.delivered: list[tuple[str, int]] = []
        self.synchronous = False
        self._lock = threading.Lock()

    def deliver(self, events: list[dict[str, Any]]) -> None:
        batch = list(events)
        with self._lock:
            if self.drop_next:
                take = min(self.drop_next, len(batch))
                self.drop_next -= take
                batch = batch[take:]
            if self.reorder:
                batch.reverse()
            if self.duplicate:
                batch = batch + batch
        if not batch or not self.endpoints:
            return
        if self.synchronous:
            self._send(batch)
        else:
            threading.Thread(target=self._send, args=(batch,), daemon=True).start()

    def _send(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            body = json.dumps(event)
            for endpoint in list(self.endpoints):
                enabled = endpoint.get("enabled_events") or ["*"]
                if "*" not in enabled and event["type"] not in enabled:
                    continue
                try:
                    answer = requests.post(
                        endpoint["url"],
                        data=body.encode(),
                        timeout=10,
                        headers={
                            "Content-Type": "application/json",
                            "Stripe-Signature": sign(body, endpoint["secret"]),
                        },
                    )
                    status = answer.status_code
                except requests.RequestException:
                    status = 0
                with self._lock:
                    self.delivered.append((event["id"], status))


SANDBOX_PER_SECOND = ENDPOINT_PER_SECOND = 25  # docs.stripe.com/rate-limits
BURST = 10


def operation(method: str, path: str) -> str:
    """A request as Stripe's per-endpoint limit counts it: the method and the path with every
    object id (a prefix, ``_``, a token with digits or capitals) as ``{id}``."""
    parts = [
        "{id}" if ("_" in p and re.search(r"[0-9A-Z]", p)) or p.isdigit() else p
        for p in path.split("/")
    ]
    return f"{method.upper()} {'/'.join(parts)}"
