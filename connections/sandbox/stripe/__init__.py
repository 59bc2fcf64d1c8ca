"""A stateful Stripe API simulator.

Objects are built from Stripe's own example objects (``data/stripe-objects.json``) and behave as
the contract says: form-encoded requests with nested keys, ``Idempotency-Key`` (a replay returns
the saved response; the same key with other parameters is an ``idempotency_error``), lists with
``limit``/``starting_after`` newest first, search by metadata, events for every change (the
events list reaches back 30 days), invoices that are drafted, given items, finalized and paid,
invoice payments linking a payment intent to its invoice, refunds and disputes.

Webhooks are delivered to registered endpoints, signed ``Stripe-Signature: t=…,v1=…`` with
HMAC-SHA256 of ``"{t}.{body}"``; delivery can be made to duplicate, reorder or drop events.
Sandbox actions (``POST /_sandbox/pay_invoice``, ``/refund``, ``/dispute``, ``/charge``) stand in
for a customer paying, a refund and a dispute.

API keys are objects of the v2 IAM API: ``POST /v2/iam/api_keys/{id}/rotate`` (JSON body,
``expire_current_key_in_minutes`` at most 10080, ``public_key.pem_key`` an RSA key of 2048 bits or
more, required for a secret key) makes a new key whose secret comes back as a compact JWE
encrypted to that public key (``secret_key.encrypted_secret``) and, as for every test-mode key,
in plain as ``secret_key.token``; the rotated key keeps working until it expires, then is
answered 401.  Stripe publishes neither the JWE algorithms it seals with (searched) nor that a
live key carries no plain token: ``secret_sealing`` picks the algorithms (``RSA-OAEP-256`` +
``A256GCM`` by default) and ``plain_token`` can be turned off; rotation is tested under each
RSA-OAEP / AES choice, with the plain token left out.

The simulator is split by API area: ``keys`` (v2 API keys), ``billing`` (customers, invoices,
prices, invoice items), ``money`` (events, charges, intents, balance, payouts, refunds, invoice
payments), ``scripted`` (sandbox actions), ``common`` (templates, ids, forms, signatures,
webhook delivery); this module holds the account's state, its HTTP handling and persistence.
"""

from __future__ import annotations

import collections
import copy
import json
import logging
import re
import secrets
import time
from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Request, Response

from connections.sandbox.base import RateLimit, Simulator
from connections.sandbox.stripe.billing import BillingApi
from connections.sandbox.stripe.common import (
    API_VERSION,
    BURST,
    ENDPOINT_PER_SECOND,
    PREFIX,
    SANDBOX_PER_SECOND,
    TEMPLATES,
    StripeError,
    WebhookDelivery,
    operation,
    parse_form,
    sign,
    stripe_id,
)
from connections.sandbox.stripe.keys import KeysApi
from connections.sandbox.stripe.money import MoneyApi
from connections.sandbox.stripe.scripted import ScriptedCustomers

logger = logging.getLogger(__name__)


class StripeSimulator(KeysApi, BillingApi, MoneyApi, ScriptedCustomers, Simulator):
    """One Stripe account in test mode."""

    name = "stripe"
    kind = "stripe"
    label = "Stripe"
    default_port = 8102
    activity_share = 0.3  # of open invoices paid at each activity tick

    def __init__(
        self,
        *,
        api_key: str = "sk_test_sandbox_0123456789abcdef",
        rate_limit_per_minute: int | None = SANDBOX_PER_SECOND * 60,
        fee_percent: float = 2.9,
        fee_fixed: int = 30,
    ) -> None:
        # Stripe's published limits for a sandbox (docs.stripe.com/rate-limits): 25 requests a
        # second for the account and 25 for each endpoint.  Stripe publishes no burst; the
        # simulator allows a small one (``BURST``), the least a real bucket may allow.
        super().__init__(rate_limit_per_minute=rate_limit_per_minute)
        if self.rate_limit.per_minute:
            self.rate_limit = RateLimit(per_minute=self.rate_limit.per_minute, burst=BURST)
        self.endpoint_limit = RateLimit(per_minute=ENDPOINT_PER_SECOND * 60, burst=BURST)
        self.by_operation: collections.Counter[str] = collections.Counter()  # requests served
        self.secret_sealing = ("RSA-OAEP-256", "A256GCM")  # JWE alg and enc of a new secret
        self.plain_token = True
        self.api_keys: dict[str, dict[str, Any]] = {
            "ak_sandbox_initial": {
                "id": "ak_sandbox_initial",
                "name": "ml-connector",
                "secret": api_key,
                "created": int(time.time()),
                "expires_at": None,
            }
        }
        self.webhook_secret = "whsec_" + secrets.token_urlsafe(18)  # for endpoints added by tests
        self.fee_percent, self.fee_fixed = fee_percent, fee_fixed
        self.objects: dict[str, dict[str, dict[str, Any]]] = {k: {} for k in PREFIX}
        self.events: list[dict[str, Any]] = []
        self.pending: list[dict[str, Any]] = []  # raised by the request in progress
        self.idempotency: dict[str, tuple[str, int, str]] = {}
        self.webhooks = WebhookDelivery()
        self.api_requests = 0
        self.invoice_sequence = 0
        self.payout_members: dict[str, list[str]] = {}  # payout id → its balance transactions
        self.clock: Callable[[], int] = lambda: int(time.time())

    # -- objects and events -----------------------------------------------------------------

    def new(self, kind: str, **fields: Any) -> dict[str, Any]:
        obj = copy.deepcopy(TEMPLATES.get(kind, {"object": kind}))
        obj.update(
            {
                "id": stripe_id(kind),
                "object": kind,
                "created": self.clock(),
                "livemode": False,
                "metadata": {},
            }
        )
        obj.update(fields)
        self.objects[kind][obj["id"]] = obj
        return obj

    def emit(
        self,
        kind: str,
        obj: dict[str, Any],
        previous: dict[str, Any] | None = None,
        request: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        data: dict[str, Any] = {"object": copy.deepcopy(obj)}
        if previous:
            data["previous_attributes"] = previous
        event = self.new(
            "event",
            type=kind,
            data=data,
            api_version=API_VERSION,
            pending_webhooks=len(self.webhooks.endpoints),
            request=request or {"id": None, "idempotency_key": None},
        )
        event.pop("metadata", None)
        self.events.append(event)
        return event

    def get(self, kind: str, object_id: str) -> dict[str, Any]:
        obj = self.objects[kind].get(object_id)
        if obj is None:
            raise StripeError(
                404,
                "invalid_request_error",
                f"No such {kind}: '{object_id}'",
                "id",
                "resource_missing",
            )
        return obj

    # -- HTTP -------------------------------------------------------------------------------

    def set_conditions(
        self,
        *,
        endpoint_rate_per_second: float | None = None,
        endpoint_burst: int | None = None,
        **others: Any,
    ) -> None:
        """Beside latency and the account's limit: Stripe's limit of each endpoint (each named
        operation counts apart — docs.stripe.com/rate-limits: "a default limit of 25 requests
        per second" per endpoint); 0 lifts it."""
        super().set_conditions(**others)
        if endpoint_rate_per_second is not None:
            self.endpoint_limit = RateLimit(
                per_minute=int(float(endpoint_rate_per_second) * 60) or None,
                burst=int(endpoint_burst) if endpoint_burst else BURST,
            )

    def handle(self, request: Request) -> Response:
        refused = self._authenticate(request.headers.get("Authorization", ""))
        if refused is not None:
            return refused.response()
        wait = self.rate_limit.check("account")
        if wait is None and self.endpoint_limit.per_minute:
            wait = self.endpoint_limit.check(operation(request.method, request.path))
        if wait is not None:
            return StripeError(
                429,
                "rate_limit_error",
                "Too many requests made to the API too quickly",
                code="rate_limit",
            ).response()
        with self.lock:
            self.api_requests += 1
            self.by_operation[operation(request.method, request.path)] += 1
        return self.apply_fault(f"{request.method} {request.path}", lambda: self._process(request))

    def _process(self, request: Request) -> Response:
        body = request.get_data(as_text=True)
        if request.path.startswith("/v2/") and request.method == "POST":
            try:
                params = json.loads(body) if body.strip() else {}
            except ValueError:
                params = None
            if not isinstance(params, dict):
                return StripeError(
                    400, "invalid_request_error", "The body must be a JSON object."
                ).response()
        else:
            params = (
                parse_form(body)
                if request.method == "POST"
                else parse_form(request.query_string.decode())
            )
        key = request.headers.get("Idempotency-Key")
        fingerprint = f"{request.method} {request.path} {body}"
        if request.method == "POST" and key:
            with self.lock:
                saved = self.idempotency.get(key)
            if saved is not None:
                if saved[0] != fingerprint:
                    return StripeError(
                        400,
                        "idempotency_error",
                        "Keys for idempotent requests "
                        "can only be used with the same parameters they were "
                        "first used with. Try using a key other than "
                        f"'{key}' if you meant to execute a different request.",
                    ).response()
                return Response(
                    saved[2],
                    status=saved[1],
                    content_type="application/json",
                    headers={"Idempotent-Replayed": "true"},
                )
        events: list[dict[str, Any]] = []
        try:
            with self.lock:
                result = self.route(request.method, request.path, params, key)
                events = self._take_pending()
        except StripeError as exc:
            response = exc.response()
            status, text = exc.status, response.get_data(as_text=True)
        else:
            status, text = 200, json.dumps(result)
            response = Response(text, status=status, content_type="application/json")
        if request.method == "POST" and key and status < 500:
            with self.lock:
                self.idempotency[key] = (fingerprint, status, text)
        self.webhooks.deliver(events)
        return response

    def route(self, method: str, path: str, params: dict[str, Any], key: str | None) -> Any:
        parts = path.strip("/").split("/")
        if parts[:3] == ["v2", "iam", "api_keys"]:
            return self.api_v2_keys(method, parts[3:], params)
        if parts[0] != "v1" or len(parts) < 2:
            raise StripeError(404, "invalid_request_error", f"Unrecognized request URL ({path})")
        resource, rest = parts[1], parts[2:]
        handler = getattr(self, f"api_{resource}", None)
        if handler is None:
            raise StripeError(404, "invalid_request_error", f"Unrecognized request URL ({path})")
        return handler(
            method, rest, params, {"id": f"req_{secrets.token_hex(7)}", "idempotency_key": key}
        )

    def _event(
        self,
        kind: str,
        obj: dict[str, Any],
        request: dict[str, Any],
        previous: dict[str, Any] | None = None,
    ) -> None:
        self.pending.append(self.emit(kind, obj, previous, request))

    # -- lists and search -------------------------------------------------------------------

    def _list(self, items: list[dict[str, Any]], params: dict[str, Any], url: str) -> Any:
        created = params.get("created")
        if isinstance(created, dict):  # created[gte|gt|lte|lt]=<unix time>, as Stripe's lists
            bounds = {k: int(v) for k, v in created.items() if k in ("gte", "gt", "lte", "lt")}
            items = [
                o
                for o in items
                if o["created"] >= bounds.get("gte", o["created"])
                and o["created"] > bounds.get("gt", o["created"] - 1)
                and o["created"] <= bounds.get("lte", o["created"])
                and o["created"] < bounds.get("lt", o["created"] + 1)
            ]
        elif created not in (None, ""):
            items = [o for o in items if o["created"] == int(created)]
        items = sorted(items, key=lambda o: (o["created"], o["id"]), reverse=True)
        limit = max(1, min(100, int(params.get("limit", 10))))
        after = params.get("starting_after")
        if after:
            ids = [o["id"] for o in items]
            items = items[ids.index(after) + 1 :] if after in ids else []
        page = items[:limit]
        return {"object": "list", "data": page, "has_more": len(items) > limit, "url": url}

    def _search(self, kind: str, params: dict[str, Any], url: str) -> Any:
        query = params.get("query", "")
        clauses = re.findall(r"(metadata\['([^']+)'\]|\w+):'([^']*)'", query)
        if not clauses:
            raise StripeError(400, "invalid_request_error", f"Invalid search query: {query}")
        found = []
        for obj in self.objects[kind].values():
            ok = True
            for whole, meta_key, value in clauses:
                actual = (obj.get("metadata") or {}).get(meta_key) if meta_key else obj.get(whole)
                ok = ok and actual == value
            if ok:
                found.append(obj)
        found.sort(key=lambda o: (o["created"], o["id"]), reverse=True)
        return {
            "object": "search_result",
            "data": found[: int(params.get("limit", 10))],
            "has_more": False,
            "next_page": None,
            "url": url,
        }

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "objects": self.objects,
                "events": self.events,
                "idempotency": self.idempotency,
                "invoice_sequence": self.invoice_sequence,
                "payout_members": self.payout_members,
                "endpoints": self.webhooks.endpoints,
                "api_keys": self.api_keys,
            }

    def restore(self, snapshot: dict[str, Any]) -> None:
        with self.lock:
            self.objects = {k: snapshot["objects"].get(k, {}) for k in PREFIX}
            self.events = snapshot["events"]
            self.idempotency = snapshot["idempotency"]
            self.invoice_sequence = snapshot["invoice_sequence"]
            self.payout_members = snapshot.get("payout_members", {})
            self.webhooks.endpoints = snapshot["endpoints"]
            self.api_keys = snapshot.get("api_keys") or self.api_keys

    def state_summary(self) -> dict[str, Any]:
        return {
            **super().state_summary(),
            "api_requests": self.api_requests,
            "by_operation": dict(self.by_operation),
            "endpoint_rate_limited": self.endpoint_limit.rejected,
            **{f"{k}s": len(v) for k, v in self.objects.items() if v},
            "events": len(self.events),
            "webhooks_delivered": len(self.webhooks.delivered),
        }

    def connection_values(self, url: str) -> dict[str, Any]:
        return {
            "kind": "stripe",
            "credentials": {"api_key": self.api_key, "webhook_secret": self.webhook_secret},
            "settings": {"base_url": url, "api_key_id": self.api_key_id},
        }


__all__ = ["StripeError", "StripeSimulator", "operation", "sign"]
