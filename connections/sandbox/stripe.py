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
encrypted to that public key (``secret_key.encrypted_secret``; ``RSA-OAEP-256`` + ``A256GCM``,
unverified: Stripe does not publish its choice) and, as for every test-mode key, in plain as
``secret_key.token``; the rotated key keeps working until it expires, then is answered 401.
"""

from __future__ import annotations

import base64
import collections
import copy
import hashlib
import hmac
import json
import logging
import random
import re
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import requests
from jwcrypto import jwe, jwk
from jwcrypto.common import JWException
from werkzeug.wrappers import Request, Response

from connections.sandbox.base import RateLimit, Simulator, json_response

logger = logging.getLogger(__name__)

TEMPLATES: dict[str, Any] = json.loads(
    (Path(__file__).parent / "data" / "stripe-objects.json").read_text()
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


class StripeSimulator(Simulator):
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

    # -- API keys ---------------------------------------------------------------------------

    def _live(self, key: dict[str, Any]) -> bool:
        return key["expires_at"] is None or key["expires_at"] > self.clock()

    @property
    def api_key(self) -> str:
        """The newest key that still works (what a new connection is given)."""
        live = [k for k in self.api_keys.values() if self._live(k)]
        return max(live, key=lambda k: k["created"])["secret"] if live else ""

    @property
    def api_key_id(self) -> str:
        return next((k["id"] for k in self.api_keys.values() if k["secret"] == self.api_key), "")

    def _authenticate(self, auth: str) -> StripeError | None:
        secret = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else ""
        shown = secret[:8] + "****" if secret else "none"
        key = next((k for k in self.api_keys.values() if k["secret"] == secret), None)
        if key is None:
            return StripeError(401, "invalid_request_error", f"Invalid API Key provided: {shown}")
        if not self._live(key):
            return StripeError(401, "invalid_request_error", f"Expired API Key provided: {shown}")
        return None

    def _key_view(self, key: dict[str, Any]) -> dict[str, Any]:
        """A v2 API key object, without its secret."""
        iso = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(key["created"]))
        expires = key["expires_at"]
        return {
            "id": key["id"],
            "object": "v2.iam.api_key",
            "type": "secret_key",
            "name": key.get("name"),
            "note": None,
            "status": "active" if self._live(key) else "expired",
            "created": iso,
            "expires_at": (
                time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(expires)) if expires else None
            ),
            "ip_allowlist": [],
            "last_used": None,
            "livemode": False,
            "managed_by": None,
            "publishable_key": None,
            "secret_key": {"secret_token_redacted": key["secret"][:8] + "…" + key["secret"][-4:]},
        }

    def api_v2_keys(self, method: str, rest: list[str], p: dict[str, Any]) -> Any:
        if method == "GET" and not rest:
            return {
                "data": [self._key_view(k) for k in self.api_keys.values()],
                "next_page_url": None,
                "previous_page_url": None,
            }
        key = self.api_keys.get(rest[0]) if rest else None
        if key is None:
            raise StripeError(404, "invalid_request_error", "No such API key.", code="not_found")
        if method == "GET" and len(rest) == 1:
            return self._key_view(key)
        if method != "POST" or rest[1:] != ["rotate"]:
            raise StripeError(404, "invalid_request_error", "Unrecognized request URL.")
        if not self._live(key):
            raise StripeError(400, "invalid_request_error", "An expired API key cannot be rotated.")
        minutes = p.get("expire_current_key_in_minutes", 0)
        if isinstance(minutes, bool) or not isinstance(minutes, int):
            raise StripeError(
                400, "invalid_request_error", "expire_current_key_in_minutes must be an integer."
            )
        if not 0 <= minutes <= MAX_KEY_GRACE_MINUTES:
            raise StripeError(
                400,
                "invalid_request_error",
                "expire_current_key_in_minutes must be between 0 and 10080 (7 days).",
            )
        public = self._public_key(p.get("public_key"))
        secret = "sk_test_" + secrets.token_hex(24)
        new = {
            "id": "ak_" + secrets.token_hex(12),
            "name": key.get("name"),
            "secret": secret,
            "created": max(self.clock(), key["created"] + 1),
            "expires_at": None,
        }
        self.api_keys[new["id"]] = new
        key["expires_at"] = self.clock() + minutes * 60
        sealed = jwe.JWE(
            secret.encode(),
            protected={"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": public[1] or "key"},
        )
        sealed.add_recipient(public[0])
        view = self._key_view(new)
        view["secret_key"] = {
            **view["secret_key"],
            "token": secret,  # test-mode keys carry it in plain too
            "encrypted_secret": {
                "ciphertext": sealed.serialize(compact=True),
                "format": "jwe_compact",
                "recipient_key_id": public[1],
            },
        }
        return view

    @staticmethod
    def _public_key(value: Any) -> tuple[jwk.JWK, str | None]:
        pem = value.get("pem_key") if isinstance(value, dict) else None
        if not isinstance(pem, dict) or not isinstance(pem.get("data"), str):
            raise StripeError(
                400,
                "invalid_request_error",
                "A public_key with a pem_key is required to rotate a secret key.",
                param="public_key",
            )
        if pem.get("algorithm") != "RSA":
            raise StripeError(400, "invalid_request_error", "pem_key.algorithm must be RSA.")
        try:
            key = jwk.JWK.from_pem(pem["data"].encode())
        except (JWException, ValueError, TypeError):
            raise StripeError(
                400, "invalid_request_error", "pem_key.data is not a PEM public key."
            ) from None
        if key.get("kty") != "RSA" or key.has_private:
            raise StripeError(
                400, "invalid_request_error", "pem_key.data must be an RSA public key."
            )
        bits = len(base64_url_decode(key.get("n", ""))) * 8
        if bits < 2048:
            raise StripeError(
                400, "invalid_request_error", "The RSA key must be 2048 bits or more."
            )
        return key, (str(value["id"]) if value.get("id") else None)

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

    # -- resources --------------------------------------------------------------------------

    def api_customers(
        self, method: str, rest: list[str], p: dict[str, Any], req: dict[str, Any]
    ) -> Any:
        if method == "POST" and not rest:
            tax_ids = p.get("tax_id_data") or []
            if not isinstance(tax_ids, list) or not all(isinstance(t, dict) for t in tax_ids):
                raise StripeError(
                    400, "invalid_request_error", "Invalid tax_id_data", "tax_id_data"
                )
            customer = self.new(
                "customer",
                email=p.get("email"),
                name=p.get("name"),
                phone=p.get("phone"),
                description=p.get("description"),
                metadata=p.get("metadata", {}),
                currency=None,
                balance=0,
                address=p.get("address") or None,
            )
            customer["tax_ids"] = {
                "object": "list",
                "data": [
                    {
                        "id": f"txi_{secrets.token_hex(7)}",
                        "object": "tax_id",
                        "type": t.get("type"),
                        "value": t.get("value"),
                        "customer": customer["id"],
                    }
                    for t in tax_ids
                ],
                "has_more": False,
                "url": f"/v1/customers/{customer['id']}/tax_ids",
            }
            self._event("customer.created", customer, req)
            return customer
        if method == "GET" and rest == ["search"]:
            return self._search("customer", p, "/v1/customers/search")
        if method == "GET" and not rest:
            items = [
                c
                for c in self.objects["customer"].values()
                if not p.get("email") or c.get("email") == p["email"]
            ]
            return self._list(items, p, "/v1/customers")
        customer = self.get("customer", rest[0])
        if method == "POST":
            previous = {k: customer.get(k) for k in p if k in customer}
            for k, v in p.items():
                if k == "metadata":
                    customer["metadata"] = {**customer["metadata"], **v}
                elif k in ("email", "name", "phone", "description", "address"):
                    customer[k] = v or None
            self._event("customer.updated", customer, req, previous)
        return customer

    def _totals(self, invoice: dict[str, Any]) -> None:
        lines = invoice["lines"]["data"]
        total = sum(int(line["amount"]) for line in lines)
        invoice.update(
            subtotal=total,
            subtotal_excluding_tax=total,
            total=total,
            total_excluding_tax=total,
            amount_due=total,
            amount_remaining=max(0, total - invoice["amount_paid"]),
        )

    def api_invoices(
        self, method: str, rest: list[str], p: dict[str, Any], req: dict[str, Any]
    ) -> Any:
        if method == "POST" and not rest:
            customer = self.get("customer", p.get("customer", ""))
            now = self.clock()
            due = p.get("due_date")
            if not due and p.get("days_until_due"):
                due = now + int(p["days_until_due"]) * 86400
            invoice = self.new(
                "invoice",
                customer=customer["id"],
                customer_email=customer.get("email"),
                customer_name=customer.get("name"),
                currency=p.get("currency", "usd"),
                collection_method=p.get("collection_method", "charge_automatically"),
                auto_advance=p.get("auto_advance") == "true",
                status="draft",
                number=None,
                due_date=int(due) if due else None,
                description=p.get("description"),
                metadata=p.get("metadata", {}),
                amount_paid=0,
                amount_overpaid=0,
                attempted=False,
                attempt_count=0,
                hosted_invoice_url=None,
                lines={"object": "list", "data": [], "has_more": False, "url": ""},
                status_transitions={
                    "finalized_at": None,
                    "paid_at": None,
                    "marked_uncollectible_at": None,
                    "voided_at": None,
                },
            )
            invoice["lines"]["url"] = f"/v1/invoices/{invoice['id']}/lines"
            self._totals(invoice)
            self._event("invoice.created", invoice, req)
            return invoice
        if method == "GET" and rest == ["search"]:
            return self._search("invoice", p, "/v1/invoices/search")
        if method == "GET" and not rest:
            items = [
                i
                for i in self.objects["invoice"].values()
                if (not p.get("customer") or i["customer"] == p["customer"])
                and (not p.get("status") or i["status"] == p["status"])
            ]
            return self._list(items, p, "/v1/invoices")
        invoice = self.get("invoice", rest[0])
        if method == "POST" and rest[1:] == ["finalize"]:
            if invoice["status"] != "draft":
                raise StripeError(
                    400,
                    "invalid_request_error",
                    "This invoice is already finalized, you can't re-finalize a non-draft invoice.",
                    code="invoice_not_editable",
                )
            self.invoice_sequence += 1
            invoice.update(
                status="open",
                number=f"SBX-{self.invoice_sequence:04d}",
                hosted_invoice_url=f"https://invoice.stripe.sandbox/{invoice['id']}",
            )
            invoice["status_transitions"]["finalized_at"] = self.clock()
            self._event("invoice.finalized", invoice, req, {"status": "draft"})
            return invoice
        if method == "POST" and rest[1:] == ["pay"]:
            return self.pay_invoice(invoice["id"], request=req)
        if method == "POST" and rest[1:] == ["add_lines"]:
            return self._add_lines(invoice, p, req)
        if method == "POST" and rest[1:] == ["remove_lines"]:
            return self._remove_lines(invoice, p, req)
        if method == "POST" and len(rest) == 1:
            if invoice["status"] != "draft" and set(p) - {"metadata"}:
                raise StripeError(
                    400,
                    "invalid_request_error",
                    "Finalized invoices can't be updated in this way",
                    code="invoice_not_editable",
                )
            invoice["metadata"] = {**invoice["metadata"], **p.get("metadata", {})}
            self._event("invoice.updated", invoice, req)
        return invoice

    @staticmethod
    def _line_params(invoice: dict[str, Any], p: dict[str, Any], what: str) -> list[dict]:
        """The ``lines`` of a bulk line request, on a draft invoice only."""
        lines = p.get("lines")
        if not (isinstance(lines, list) and lines and all(isinstance(x, dict) for x in lines)):
            raise StripeError(
                400, "invalid_request_error", "Missing required param: lines.", "lines"
            )
        if invoice["status"] != "draft":
            raise StripeError(
                400,
                "invalid_request_error",
                f"You can only {what} draft invoices.",
                code="invoice_not_editable",
            )
        return lines

    def _add_lines(
        self, invoice: dict[str, Any], p: dict[str, Any], req: dict[str, Any]
    ) -> dict[str, Any]:
        """``POST /v1/invoices/{id}/add_lines``: every line or none (draft invoices only)."""
        lines = self._line_params(invoice, p, "add lines to")
        for n, line in enumerate(lines):
            price_id = (
                (line.get("pricing") or {}).get("price")
                if isinstance(line.get("pricing"), dict)
                else None
            )
            if price_id:
                price = self.get("price", price_id)
                if not price["active"]:
                    raise StripeError(
                        400,
                        "invalid_request_error",
                        f"The price {price_id} is not active.",
                        f"lines[{n}][pricing][price]",
                    )
                line["amount"] = price["unit_amount"] * int(line.get("quantity") or 1)
                line["metadata"] = {**(line.get("metadata") or {}), "price": price_id}
            try:
                int(line["amount"])
            except (KeyError, TypeError, ValueError):
                raise StripeError(
                    400, "invalid_request_error", "Invalid integer: amount", f"lines[{n}][amount]"
                ) from None
        for n, line in enumerate(lines):
            self._add_item(
                invoice["customer"],
                invoice,
                line,
                req,
                currency=invoice["currency"],
                field=f"lines[{n}][amount]",
            )
        if isinstance(p.get("invoice_metadata"), dict):
            invoice["metadata"] = {**invoice["metadata"], **p["invoice_metadata"]}
        self._event("invoice.updated", invoice, req)
        return invoice

    def _remove_lines(
        self, invoice: dict[str, Any], p: dict[str, Any], req: dict[str, Any]
    ) -> dict[str, Any]:
        """``POST /v1/invoices/{id}/remove_lines``: ``lines[i][id]``, ``lines[i][behavior]``."""
        lines = self._line_params(invoice, p, "remove lines from")
        present = {line["id"] for line in invoice["lines"]["data"]}
        wanted = {str(line.get("id")) for line in lines}
        if not wanted <= present:
            raise StripeError(
                400, "invalid_request_error", "No such line item on this invoice.", "lines"
            )
        kept = [line for line in invoice["lines"]["data"] if line["id"] not in wanted]
        invoice["lines"]["data"] = kept
        self._totals(invoice)
        self._event("invoice.updated", invoice, req)
        return invoice

    def api_prices(
        self, method: str, rest: list[str], p: dict[str, Any], req: dict[str, Any]
    ) -> Any:
        if method == "POST" and not rest:
            try:
                amount = int(p["unit_amount"])
            except (KeyError, TypeError, ValueError):
                raise StripeError(
                    400, "invalid_request_error", "Invalid integer: unit_amount", "unit_amount"
                ) from None
            product_data = p.get("product_data") if isinstance(p.get("product_data"), dict) else {}
            product = (
                p.get("product")
                or self.new("product", name=product_data.get("name") or "Product", active=True)[
                    "id"
                ]
            )
            return self.new(
                "price",
                active=True,
                currency=str(p.get("currency", "usd")).lower(),
                unit_amount=amount,
                product=product,
                type="one_time",
                metadata=p.get("metadata") if isinstance(p.get("metadata"), dict) else {},
            )
        if method == "GET" and not rest:
            return self._list(list(self.objects["price"].values()), p, "/v1/prices")
        price = self.get("price", rest[0])
        if method == "POST":
            if "unit_amount" in p or "currency" in p:
                raise StripeError(
                    400,
                    "invalid_request_error",
                    "A price's amount and currency cannot be changed: create a new price.",
                )
            if "active" in p:
                price["active"] = str(p["active"]).lower() == "true"
            if isinstance(p.get("metadata"), dict):
                price["metadata"] = {**price["metadata"], **p["metadata"]}
        return price

    def api_invoiceitems(
        self, method: str, rest: list[str], p: dict[str, Any], req: dict[str, Any]
    ) -> Any:
        if method != "POST" or rest:
            raise StripeError(404, "invalid_request_error", "Unrecognized request URL")
        customer = self.get("customer", p.get("customer", ""))
        invoice = self.get("invoice", p["invoice"]) if p.get("invoice") else None
        if invoice is not None and invoice["status"] != "draft":
            raise StripeError(
                400,
                "invalid_request_error",
                "You can only add invoice items to draft invoices.",
                "invoice",
                "invoice_not_editable",
            )
        return self._add_item(
            customer["id"],
            invoice,
            p,
            req,
            currency=p.get("currency", "usd"),
        )

    def _add_item(
        self,
        customer: str,
        invoice: dict[str, Any] | None,
        p: dict[str, Any],
        req: dict[str, Any],
        *,
        currency: str,
        field: str = "amount",
    ) -> dict[str, Any]:
        """An invoice item, and its line on ``invoice`` when it has one."""
        try:
            amount = int(p["amount"])
        except (KeyError, TypeError, ValueError):
            raise StripeError(
                400, "invalid_request_error", f"Invalid integer: {field}", field
            ) from None
        item = self.new(
            "invoiceitem",
            customer=customer,
            amount=amount,
            currency=currency,
            description=p.get("description"),
            invoice=invoice["id"] if invoice else None,
            quantity=1,
            metadata=p.get("metadata", {}) if isinstance(p.get("metadata"), dict) else {},
            date=self.clock(),
        )
        if invoice is not None:
            line = copy.deepcopy(TEMPLATES["invoice"]["lines"]["data"][0])
            line.update(
                id=f"il_{secrets.token_hex(7)}",
                amount=amount,
                currency=item["currency"],
                description=item["description"],
                invoice=invoice["id"],
                metadata=item["metadata"],
            )
            invoice["lines"]["data"].append(line)
            self._totals(invoice)
        self._event("invoiceitem.created", item, req)
        return item

    def api_events(
        self, method: str, rest: list[str], p: dict[str, Any], req: dict[str, Any]
    ) -> Any:
        if rest:
            return self.get("event", rest[0])
        oldest = self.clock() - EVENTS_REACH_SECONDS
        types = set(p.get("types") or ([p["type"]] if p.get("type") else []))
        created = p.get("created") or {}
        gte = int(created.get("gte", 0)) if isinstance(created, dict) else 0
        items = [
            e
            for e in self.events
            if e["created"] >= max(oldest, gte) and (not types or e["type"] in types)
        ]
        return self._list(items, p, "/v1/events")

    def api_charges(
        self, method: str, rest: list[str], p: dict[str, Any], req: dict[str, Any]
    ) -> Any:
        return (
            self.get("charge", rest[0])
            if rest
            else self._list(list(self.objects["charge"].values()), p, "/v1/charges")
        )

    def api_payment_intents(
        self, method: str, rest: list[str], p: dict[str, Any], req: dict[str, Any]
    ) -> Any:
        return self.get("payment_intent", rest[0])

    def api_balance_transactions(
        self, method: str, rest: list[str], p: dict[str, Any], req: dict[str, Any]
    ) -> Any:
        if rest:
            return self.get("balance_transaction", rest[0])
        members = None
        if p.get("payout"):
            self.get("payout", p["payout"])  # 404 for an unknown payout, as Stripe answers
            members = set(self.payout_members.get(p["payout"], ()))
        items = [
            t
            for t in self.objects["balance_transaction"].values()
            if members is None or t["id"] in members
        ]
        page = self._list(items, p, "/v1/balance_transactions")
        if "data.source" in (p.get("expand") or []):
            page = {**page, "data": [self._expand_source(t) for t in page["data"]]}
        return page

    def _expand_source(self, txn: dict[str, Any]) -> dict[str, Any]:
        source = txn.get("source")
        if not isinstance(source, str):
            return txn
        kind = {"ch": "charge", "re": "refund", "po": "payout"}.get(source.split("_")[0])
        found = self.objects.get(kind or "", {}).get(source) if kind else None
        return {**txn, "source": found or source}

    def api_payouts(
        self, method: str, rest: list[str], p: dict[str, Any], req: dict[str, Any]
    ) -> Any:
        if rest:
            return self.get("payout", rest[0])
        return self._list(list(self.objects["payout"].values()), p, "/v1/payouts")

    def api_refunds(
        self, method: str, rest: list[str], p: dict[str, Any], req: dict[str, Any]
    ) -> Any:
        if method == "GET" and not rest:
            items = [
                r
                for r in self.objects["refund"].values()
                if not p.get("charge") or r["charge"] == p["charge"]
            ]
            return self._list(items, p, "/v1/refunds")
        if method == "POST" and not rest:
            return self.refund(
                p.get("charge", ""), int(p["amount"]) if p.get("amount") else None, request=req
            )
        return self.get("refund", rest[0])

    def api_invoice_payments(
        self, method: str, rest: list[str], p: dict[str, Any], req: dict[str, Any]
    ) -> Any:
        if rest:
            return self.get("invoice_payment", rest[0])
        wanted_pi = (p.get("payment") or {}).get("payment_intent")
        items = [
            ip
            for ip in self.objects["invoice_payment"].values()
            if (not p.get("invoice") or ip["invoice"] == p["invoice"])
            and (not wanted_pi or ip["payment"]["payment_intent"] == wanted_pi)
        ]
        return self._list(items, p, "/v1/invoice_payments")

    # -- what customers and banks do (sandbox actions) --------------------------------------

    def charge(
        self,
        *,
        amount: int,
        currency: str,
        customer: str | None = None,
        metadata: dict[str, str] | None = None,
        request: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A successful card payment: payment intent, charge and balance transaction."""
        req = request or {"id": None, "idempotency_key": None}
        fee = round(amount * self.fee_percent / 100) + self.fee_fixed
        txn = self.new(
            "balance_transaction",
            amount=amount,
            currency=currency,
            fee=fee,
            net=amount - fee,
            type="charge",
            status="pending",
            fee_details=[
                {
                    "amount": fee,
                    "currency": currency,
                    "type": "stripe_fee",
                    "description": "Stripe processing fees",
                    "application": None,
                }
            ],
        )
        intent = self.new(
            "payment_intent",
            amount=amount,
            amount_received=amount,
            currency=currency,
            customer=customer,
            status="succeeded",
            metadata=dict(metadata or {}),
        )
        charge = self.new(
            "charge",
            amount=amount,
            amount_captured=amount,
            amount_refunded=0,
            currency=currency,
            customer=customer,
            paid=True,
            captured=True,
            refunded=False,
            disputed=False,
            status="succeeded",
            payment_intent=intent["id"],
            balance_transaction=txn["id"],
            metadata=dict(metadata or {}),
        )
        txn["source"] = charge["id"]
        intent["latest_charge"] = charge["id"]
        self._event("charge.succeeded", charge, req)
        self._event("payment_intent.succeeded", intent, req)
        return charge

    def pay_invoice(
        self, invoice_id: str, amount: int | None = None, request: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        req = request or {"id": None, "idempotency_key": None}
        invoice = self.get("invoice", invoice_id)
        if invoice["status"] != "open":
            raise StripeError(
                400,
                "invalid_request_error",
                f"Invoice is {invoice['status']}; only open invoices can be paid.",
                code="invoice_not_open",
            )
        amount = invoice["amount_remaining"] if amount is None else amount
        charge = self.charge(
            amount=amount, currency=invoice["currency"], customer=invoice["customer"], request=req
        )
        self.new(
            "invoice_payment",
            invoice=invoice["id"],
            amount_paid=amount,
            amount_requested=amount,
            currency=invoice["currency"],
            is_default=True,
            status="paid",
            payment={"type": "payment_intent", "payment_intent": charge["payment_intent"]},
            status_transitions={"paid_at": self.clock(), "canceled_at": None},
        )
        invoice["amount_paid"] += amount
        invoice["amount_remaining"] = max(0, invoice["amount_due"] - invoice["amount_paid"])
        invoice["attempted"], invoice["attempt_count"] = True, invoice["attempt_count"] + 1
        if invoice["amount_remaining"] == 0:
            invoice["status"] = "paid"
            invoice["status_transitions"]["paid_at"] = self.clock()
            self._event("invoice.paid", invoice, req, {"status": "open"})
        return invoice

    def refund(
        self, charge_id: str, amount: int | None = None, request: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        req = request or {"id": None, "idempotency_key": None}
        charge = self.get("charge", charge_id)
        amount = charge["amount"] - charge["amount_refunded"] if amount is None else amount
        if amount <= 0 or amount > charge["amount"] - charge["amount_refunded"]:
            raise StripeError(
                400,
                "invalid_request_error",
                "Refund amount is greater than the unrefunded amount on the charge.",
                "amount",
            )
        refund = self.new(
            "refund",
            amount=amount,
            charge=charge["id"],
            currency=charge["currency"],
            payment_intent=charge["payment_intent"],
            status="succeeded",
            reason="requested_by_customer",
        )
        txn = self.new(
            "balance_transaction",
            amount=-amount,
            currency=charge["currency"],
            fee=0,
            net=-amount,
            type="refund",
            status="available",
            fee_details=[],
            source=refund["id"],
        )
        refund["balance_transaction"] = txn["id"]
        previous = {"amount_refunded": charge["amount_refunded"], "refunded": charge["refunded"]}
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        charge["refunds"] = {
            "object": "list",
            "has_more": False,
            "data": [r for r in self.objects["refund"].values() if r["charge"] == charge["id"]],
            "url": f"/v1/charges/{charge['id']}/refunds",
        }
        self._event("charge.refunded", charge, req, previous)
        self._event("refund.created", refund, req)
        return refund

    def payout(self, currency: str | None = None) -> list[dict[str, Any]]:
        """Pay out, per currency, every charge and refund not paid out yet (an automatic
        payout): the payout's own balance transaction, ``payout.created`` and ``payout.paid``."""
        paid_out = {t for members in self.payout_members.values() for t in members}
        by_currency: dict[str, list[dict[str, Any]]] = {}
        for txn in self.objects["balance_transaction"].values():
            if txn["type"] in ("charge", "refund") and txn["id"] not in paid_out:
                if currency is None or txn["currency"] == currency.lower():
                    by_currency.setdefault(txn["currency"], []).append(txn)
        req = {"id": None, "idempotency_key": None}
        payouts = []
        for cur, txns in sorted(by_currency.items()):
            amount = sum(t["net"] for t in txns)
            if amount <= 0:
                continue
            for txn in txns:
                txn["status"] = "available"
            now = self.clock()
            payout = self.new(
                "payout",
                amount=amount,
                currency=cur,
                arrival_date=now,
                automatic=True,
                description="STRIPE PAYOUT",
                method="standard",
                source_type="card",
                status="paid",
                type="bank_account",
                reconciliation_status="completed",
                metadata={},
            )
            own = self.new(
                "balance_transaction",
                amount=-amount,
                currency=cur,
                fee=0,
                net=-amount,
                type="payout",
                status="available",
                fee_details=[],
                source=payout["id"],
            )
            payout["balance_transaction"] = own["id"]
            self.payout_members[payout["id"]] = [t["id"] for t in txns] + [own["id"]]
            self._event("payout.created", {**payout, "status": "pending"}, req)
            self._event("payout.paid", payout, req, {"status": "in_transit"})
            payouts.append(payout)
        return payouts

    def dispute(self, charge_id: str) -> dict[str, Any]:
        charge = self.get("charge", charge_id)
        dispute = self.new(
            "dispute",
            amount=charge["amount"],
            charge=charge["id"],
            currency=charge["currency"],
            payment_intent=charge["payment_intent"],
            reason="fraudulent",
            status="needs_response",
        )
        charge["disputed"] = True
        self._event("charge.dispute.created", dispute, {"id": None, "idempotency_key": None})
        return dispute

    def act(self, action: Callable[[], Any]) -> Any:
        """Run a sandbox action and deliver the events it raised (as Stripe would)."""
        with self.lock:
            result = action()
            events = self._take_pending()
        self.webhooks.deliver(events)
        return result

    def _take_pending(self) -> list[dict[str, Any]]:
        """Events raised by the change just made, to deliver once it is complete."""
        events, self.pending = self.pending, []
        return events

    def control_action(self, request: Request) -> Response:
        p = request.get_json(force=True, silent=True) or {}
        action = request.path.removeprefix("/_sandbox/")
        try:
            if action == "pay_invoice":
                return json_response(
                    self.act(lambda: self.pay_invoice(p["invoice"], p.get("amount")))
                )
            if action == "refund":
                return json_response(self.act(lambda: self.refund(p["charge"], p.get("amount"))))
            if action == "dispute":
                return json_response(self.act(lambda: self.dispute(p["charge"])))
            if action == "payout":  # {"currency": "eur"} or every currency
                return json_response({"payouts": self.act(lambda: self.payout(p.get("currency")))})
            if action == "webhook_endpoints":
                self.webhooks.endpoints = [
                    e for e in self.webhooks.endpoints if e["url"] != p["url"]
                ]
                self.webhooks.endpoints.append(
                    {
                        "url": p["url"],
                        "secret": p["secret"],
                        "enabled_events": p.get("enabled_events") or ["*"],
                    }
                )
                return json_response({"registered": p["url"]})
            if action == "reset":  # {"keep": ["customer"]} keeps those objects
                with self.lock:
                    keep = set(p.get("keep") or [])
                    self.objects = {k: (v if k in keep else {}) for k, v in self.objects.items()}
                    self.events, self.idempotency = [], {}
                    self.api_requests = 0
                return json_response({"reset": True})
            if action == "webhook_mode":
                for key in ("duplicate", "reorder", "drop_next"):
                    if key in p:
                        setattr(self.webhooks, key, p[key])
                return json_response({"ok": True})
        except StripeError as exc:
            return exc.response()
        except KeyError as exc:
            return json_response({"error": f"missing {exc}"}, 400)
        return super().control_action(request)

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

    def activity(self, rng: Any) -> str:
        paid = self.pay_random_open_invoices(self.activity_share, rng)
        return f"customers paid {len(paid)} Stripe invoice(s)" if paid else ""

    def pay_random_open_invoices(
        self, share: float = 0.5, rng: random.Random | None = None
    ) -> list[str]:
        """Pay a share of the open invoices (the demo's customers at work)."""
        rng = rng or random.Random()
        open_ids = [i["id"] for i in self.objects["invoice"].values() if i["status"] == "open"]
        chosen = [i for i in open_ids if rng.random() < share]
        for invoice_id in chosen:
            self.act(lambda invoice_id=invoice_id: self.pay_invoice(invoice_id))
        return chosen
