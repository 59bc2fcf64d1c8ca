"""Stripe through the official ``stripe`` library (StripeClient), on our HTTP core.

The library builds requests and objects; its transport is our ``ApiClient`` (a custom
``stripe.HTTPClient``), so Stripe calls share the connection's rate limiter, retry policy
(``Retry-After``, full jitter, time budget), timeouts, redaction and typed errors.  The library's
own retries are off, so nothing is retried twice.  Every POST that creates something carries an
``Idempotency-Key`` from the posting ledger.

The secret key is applied by ``StoredKeyAuth``: on a 401 it reads the connection's key again, so
a run that began before the key was rotated carries on with the new key once the old one has
expired, instead of failing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import stripe

from connections.providers.base import CheckResult, HttpProvider, InboundEvent
from connections.providers.errors import ApiError, AuthFailed
from connections.providers.http import ApiClient, Auth, ClientConfig
from connections.providers.stripe import keys, webhooks
from connections.providers.stripe.credentials import SPEC, limits

logger = logging.getLogger(__name__)

EVENT_TYPES = (
    "payout.paid",
    "invoice.paid",
    "charge.succeeded",
    "charge.refunded",
    "payment_intent.succeeded",
    "charge.dispute.created",
)


def endpoint_of(method: str, path: str) -> str:
    """The named operation a request is, as Stripe counts its per-endpoint limit: the method and
    the path with each object id as ``{id}`` (``GET /v1/payment_intents/{id}`` for any id).
    A Stripe id is a prefix, an underscore and a token with digits or capitals (``in_1N…``);
    a word such as ``test_helpers`` is not."""
    parts = [
        "{id}" if ("_" in part and re.search(r"[0-9A-Z]", part)) or part.isdigit() else part
        for part in path.split("/")
    ]
    return f"{method.upper()} {'/'.join(parts)}"


class _Transport(stripe.HTTPClient):
    """Sends the stripe library's requests through an ``ApiClient``."""

    name = "ml-connector"

    def __init__(self, api: ApiClient) -> None:
        super().__init__()
        self.api = api

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
        *,
        _usage: Any = None,
    ) -> tuple[bytes, int, Any]:
        headers = dict(headers or {})
        method = method.upper()
        response = self.api.request(
            method,
            url,
            data=post_data,
            headers=headers,
            idempotent=method != "POST" or "Idempotency-Key" in headers,
        )
        return response.content, response.status_code, response.headers

    def request_stream(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("streaming is not used")

    def close(self) -> None:
        self.api.session.close()


class StoredKeyAuth:
    """The connection's secret key as the bearer.  After a 401 it looks whether that key was
    rotated away (a finished rotation of its key id): if so it takes the stored successor, so a
    run that began before a rotation carries on once the old key has expired.  A key that was
    never rotated stays refused (a wrong key being tested is not swapped for the stored one)."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.key = str(connection.credentials.get("api_key") or "")
        self.key_id = str((connection.settings or {}).get("api_key_id") or "")

    def apply(self, headers: dict[str, str]) -> str | None:
        headers["Authorization"] = f"Bearer {self.key}"
        return self.key

    def on_unauthorized(self, used: str | None) -> None:
        if used != self.key or not self.key_id or self.connection.pk is None:
            return  # another thread already moved on, or this key was never rotated by us
        rotations = self.connection.key_rotations.filter(status="done", old_key_id=self.key_id)
        if not rotations.exists():
            return
        stored = type(self.connection)._default_manager.filter(pk=self.connection.pk).first()
        fresh = str((stored.credentials if stored else {}).get("api_key") or "")
        if fresh and fresh != self.key:
            logger.info("Stripe refused the rotated key of %s: using its successor", stored)
            self.key = fresh
            self.key_id = str((stored.settings or {}).get("api_key_id") or "")


def _plain(obj: Any) -> dict[str, Any]:
    """A StripeObject as a plain dict (JSON-able, for audit records and flows)."""
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


class StripeProvider(HttpProvider):
    """One Stripe account."""

    kind = "stripe"
    label = "Stripe"
    spec = SPEC
    secret_patterns = (
        (re.compile(r"\b(sk|rk)_(live|test)_[0-9A-Za-z]{6,}"), r"\1_\2_***"),
        (re.compile(r"\bwhsec_[0-9A-Za-z+/=_-]{6,}"), "whsec_***"),
    )
    # Stripe publishes no maximum; its events embed lists of at most ten items and stay far
    # below this (unverified: raise it if a real event is ever refused with 413).
    webhook_max_bytes = 512 * 1024
    webhook_help = "Stripe Dashboard > Developers > Webhooks > Add endpoint"
    webhook_headers = ("Stripe-Signature",)

    # Capability LinksToRecords: where in Stripe's Dashboard a person acts on a record.  Only
    # the Dashboard's list pages are published (docs.stripe.com/disputes/responding links the
    # Disputes tab; the refund guide, the Payments page), not an address per object: the item
    # names the id to look up there.
    DASHBOARD_PAGES = {
        "dispute": ("disputes", "Answer it in Stripe's Disputes"),
        "payment": ("payments", "Find it in Stripe's Payments"),
        "refund": ("payments", "Find it in Stripe's Payments"),
    }

    @classmethod
    def record_page(cls, connection: Any, kind: str, record_id: str) -> tuple[str, str] | None:
        page = cls.DASHBOARD_PAGES.get(kind)
        api = str(connection.setting("base_url", "") or "")
        if page is None or urlsplit(api).hostname != "api.stripe.com":
            return None  # a sandbox has no Dashboard
        return f"{page[1]} ({record_id})", f"https://dashboard.stripe.com/{page[0]}"

    def verify_webhook(self, raw_body: bytes, headers: Mapping[str, str]) -> InboundEvent:
        return webhooks.verify(self.connection.credentials.get("webhook_secret"), raw_body, headers)

    def client_config(self) -> ClientConfig:
        """The connection's limits, and Stripe's limit of each endpoint beside them."""
        account, endpoint = limits(self.connection)
        return replace(
            super().client_config(),
            rate_limit_per_minute=account,
            endpoint_per_second=endpoint,
            endpoint_of=endpoint_of,
        )

    def default_headers(self) -> dict[str, str]:
        return {}

    def build_auth(self) -> Auth:
        return StoredKeyAuth(self.connection)

    @property
    def client(self) -> stripe.StripeClient:
        if not hasattr(self, "_client"):
            self._client = stripe.StripeClient(
                self.connection.credentials["api_key"],
                base_addresses={"api": self.http.config.base_url.rstrip("/")},
                http_client=_Transport(self.http),
                max_network_retries=0,
            )
        return self._client

    # -- customers --------------------------------------------------------------------------

    def find_customer(self, *, key: str, value: str) -> dict[str, Any] | None:
        """The customer whose ``metadata[key]`` is ``value`` (the ERP's number)."""
        found = self.client.v1.customers.search({"query": f"metadata['{key}']:'{value}'"})
        return _plain(found.data[0]) if found.data else None

    def index_customers(self, *, key: str) -> dict[str, dict[str, Any]]:
        """Every customer that carries ``metadata[key]``, by that value (one paged listing)."""
        index: dict[str, dict[str, Any]] = {}
        for item in self.client.v1.customers.list({"limit": 100}).auto_paging_iter():
            customer = _plain(item)
            value = (customer.get("metadata") or {}).get(key)
            if value:
                index.setdefault(value, customer)
        return index

    def create_customer(self, params: Mapping[str, Any], *, idempotency_key: str) -> dict[str, Any]:
        return _plain(
            self.client.v1.customers.create(dict(params), {"idempotency_key": idempotency_key})
        )

    def update_customer(self, customer_id: str, params: Mapping[str, Any]) -> dict[str, Any]:
        return _plain(self.client.v1.customers.update(customer_id, dict(params)))

    # -- invoices ---------------------------------------------------------------------------

    def find_invoice(self, *, key: str, value: str) -> dict[str, Any] | None:
        found = self.client.v1.invoices.search({"query": f"metadata['{key}']:'{value}'"})
        return _plain(found.data[0]) if found.data else None

    def create_invoice(
        self, params: Mapping[str, Any], lines: Sequence[Mapping[str, Any]], *, idempotency_key: str
    ) -> dict[str, Any]:
        """Draft the invoice, add all its lines in one call, finalize it: three calls, each with
        its own idempotency key."""
        invoice = self._raw(
            "post", "/v1/invoices", dict(params), idempotency_key=f"{idempotency_key}:create"
        )
        return self.complete_invoice(invoice, lines, idempotency_key=idempotency_key)

    def _raw(
        self, method: str, path: str, params: Mapping[str, Any], *, idempotency_key: str
    ) -> dict[str, Any]:
        """One call through the library's requestor (its encoding, headers and errors), its
        answer kept as plain JSON: building ``StripeObject`` trees for a write whose answer is
        only summarised costs more than the call (a third of the connector's time, profiled)."""
        response = self.client.raw_request(
            method, path, **dict(params), idempotency_key=idempotency_key
        )
        data = response.data
        if not isinstance(data, dict):
            raise ApiError("Stripe answered something that is not a JSON object.")
        return data

    def complete_invoice(
        self,
        invoice: Mapping[str, Any],
        lines: Sequence[Mapping[str, Any]],
        *,
        idempotency_key: str,
    ) -> dict[str, Any]:
        """Add the lines a draft lacks (one ``add_lines`` call, all of them or none) and finalize
        it — also after an interrupted create.  Lines carry ``metadata[line]`` so a draft found
        again shows which are there."""
        if invoice["status"] != "draft":
            return dict(invoice)
        present = {(line.get("metadata") or {}).get("line") for line in invoice["lines"]["data"]}
        missing = [
            {
                key: value
                for key, value in {
                    **line,
                    "metadata": {**line.get("metadata", {}), "line": str(number)},
                }.items()
                if key != "currency"  # a line takes the invoice's currency
            }
            for number, line in enumerate(lines, start=1)
            if str(number) not in present
        ]
        if missing:
            numbers = ",".join(item["metadata"]["line"] for item in missing)
            self._raw(
                "post",
                f"/v1/invoices/{invoice['id']}/add_lines",
                {"lines": missing},
                idempotency_key=f"{idempotency_key}:lines:{numbers}",
            )
        return self._raw(
            "post",
            f"/v1/invoices/{invoice['id']}/finalize",
            {},
            idempotency_key=f"{idempotency_key}:finalize",
        )

    def create_draft_invoice(
        self, params: Mapping[str, Any], *, idempotency_key: str
    ) -> dict[str, Any]:
        """A draft invoice (``auto_advance`` off: it stays a draft until a person sends it)."""
        params = {**params, "auto_advance": False}
        return self._raw("post", "/v1/invoices", params, idempotency_key=idempotency_key)

    def create_price(self, params: Mapping[str, Any], *, idempotency_key: str) -> dict[str, Any]:
        return self._raw("post", "/v1/prices", dict(params), idempotency_key=idempotency_key)

    def archive_price(self, price_id: str) -> dict[str, Any]:
        """Prices are immutable: a changed amount archives the old one (``active`` false)."""
        return self._raw(
            "post",
            f"/v1/prices/{price_id}",
            {"active": False},
            idempotency_key=f"archive:{price_id}",
        )

    def add_invoice_lines(
        self, invoice_id: str, lines: Sequence[Mapping[str, Any]], *, idempotency_key: str
    ) -> dict[str, Any]:
        return self._raw(
            "post",
            f"/v1/invoices/{invoice_id}/add_lines",
            {"lines": [dict(line) for line in lines]},
            idempotency_key=idempotency_key,
        )

    def remove_invoice_lines(
        self, invoice_id: str, line_ids: Sequence[str], *, idempotency_key: str
    ) -> dict[str, Any]:
        return self._raw(
            "post",
            f"/v1/invoices/{invoice_id}/remove_lines",
            {"lines": [{"id": line_id, "behavior": "delete"} for line_id in line_ids]},
            idempotency_key=idempotency_key,
        )

    def get_invoice(self, invoice_id: str) -> dict[str, Any]:
        return _plain(self.client.v1.invoices.retrieve(invoice_id))

    # -- payments ---------------------------------------------------------------------------

    def invoice_payments(
        self, *, invoice: str | None = None, payment_intent: str | None = None
    ) -> list[dict[str, Any]]:
        """Invoice payments of an invoice, or of a payment intent."""
        params: dict[str, Any] = {"limit": 100}
        if invoice:
            params["invoice"] = invoice
        if payment_intent:
            params["payment"] = {"type": "payment_intent", "payment_intent": payment_intent}
        return [_plain(p) for p in self.client.v1.invoice_payments.list(params).auto_paging_iter()]

    def invoice_for_payment_intent(self, payment_intent: str) -> dict[str, Any] | None:
        """The invoice a payment intent paid, if it paid one."""
        payments = self.invoice_payments(payment_intent=payment_intent)
        return self.get_invoice(payments[0]["invoice"]) if payments else None

    def get_charge(self, charge_id: str) -> dict[str, Any]:
        return _plain(self.client.v1.charges.retrieve(charge_id))

    def get_payment_intent(self, intent_id: str) -> dict[str, Any]:
        return _plain(self.client.v1.payment_intents.retrieve(intent_id))

    def list_refunds(self, charge_id: str) -> list[dict[str, Any]]:
        refunds = self.client.v1.refunds.list({"charge": charge_id, "limit": 100})
        return [_plain(r) for r in refunds.auto_paging_iter()]

    def get_fee(self, balance_transaction: str | None) -> int:
        if not balance_transaction:
            return 0
        return int(self.client.v1.balance_transactions.retrieve(balance_transaction)["fee"])

    def payout_items(self, payout_id: str) -> list[dict[str, Any]]:
        """The balance transactions an automatic payout paid out, each with its source (the
        charge or refund) expanded; the payout's own transaction is left out."""
        listing = self.client.v1.balance_transactions.list(
            {"payout": payout_id, "limit": 100, "expand": ["data.source"]}
        )
        return [
            t for t in (_plain(i) for i in listing.auto_paging_iter()) if t.get("type") != "payout"
        ]

    def balance_transactions(
        self, *, created_gte: int, created_lte: int
    ) -> Iterator[dict[str, Any]]:
        """Balance transactions created in [``created_gte``, ``created_lte``] (Unix time), newest
        first, a hundred a request, each with its source (the charge or refund) expanded."""
        page = self.client.v1.balance_transactions.list(
            {
                "created": {"gte": created_gte, "lte": created_lte},
                "limit": 100,
                "expand": ["data.source"],
            }
        )
        for txn in page.auto_paging_iter():
            yield _plain(txn)

    def list_charges(self, *, created_gte: int, created_lt: int) -> Iterator[dict[str, Any]]:
        """Charges created in [``created_gte``, ``created_lt``) (Unix time), every page."""
        page = self.client.v1.charges.list(
            {"created": {"gte": created_gte, "lt": created_lt}, "limit": 100}
        )
        for charge in page.auto_paging_iter():
            yield _plain(charge)

    def list_refunds_created(
        self, *, created_gte: int, created_lt: int
    ) -> Iterator[dict[str, Any]]:
        """Refunds created in [``created_gte``, ``created_lt``) (Unix time), every page."""
        page = self.client.v1.refunds.list(
            {"created": {"gte": created_gte, "lt": created_lt}, "limit": 100}
        )
        for refund in page.auto_paging_iter():
            yield _plain(refund)

    def list_events(
        self, *, since: int, types: Sequence[str] = EVENT_TYPES
    ) -> Iterator[dict[str, Any]]:
        """Events created at or after ``since`` (Unix time), oldest first."""
        page = self.client.v1.events.list(
            {"types": list(types), "created": {"gte": since}, "limit": 100}
        )
        events = [_plain(e) for e in page.auto_paging_iter()]
        yield from sorted(events, key=lambda e: (e["created"], e["id"]))

    # -- the key itself -----------------------------------------------------------------------

    def rotate_api_key(
        self,
        key_id: str,
        *,
        expire_current_in_minutes: int,
        public_key_pem: str,
        public_key_id: str,
        idempotency_key: str,
    ) -> dict[str, Any]:
        """Rotate the secret key ``key_id`` (Stripe's v2 API): the answer is the new key, its
        secret encrypted to ``public_key_pem``; the current key stops working after
        ``expire_current_in_minutes``.  The same idempotency key after a lost answer asks for
        the same rotation again, not a second one."""
        return self._raw(
            "post",
            f"/v2/iam/api_keys/{key_id}/rotate",
            {
                "expire_current_key_in_minutes": int(expire_current_in_minutes),
                "public_key": keys.public_key_param(public_key_pem, public_key_id),
            },
            idempotency_key=idempotency_key,
        )

    # -- capability RotatesKeys ----------------------------------------------------------------

    def key_rotation_policy(self) -> tuple[str, int | None, int]:
        days = self.connection.setting("rotate_every_days")
        return (
            str(self.connection.setting("api_key_id") or ""),
            int(days) if days else None,
            int(self.connection.setting("rotation_grace_minutes") or 1440),
        )

    def new_rotation_secret(self) -> str:
        return keys.new_key_pair()[0]

    def rotate_key(
        self, key_id: str, *, grace_minutes: int, sealed_to: str, label: str, idempotency_key: str
    ) -> tuple[str, str]:
        answer = self.rotate_api_key(
            key_id,
            expire_current_in_minutes=grace_minutes,
            public_key_pem=keys.public_of(sealed_to),
            public_key_id=label,
            idempotency_key=idempotency_key,
        )
        return str(answer.get("id") or "").strip(), keys.read_secret(answer, sealed_to)

    def rotated_values(self, key_id: str, secret: str) -> tuple[dict[str, str], dict[str, str]]:
        return {"api_key": secret}, {"api_key_id": key_id}

    def key_works(self, secret: str) -> bool:
        """Whether Stripe accepts ``secret`` (one read, outside this client's own key)."""
        try:
            self.http.request(
                "GET",
                "/v1/customers",
                params={"limit": 1},
                headers={"Authorization": f"Bearer {secret}"},
                auth=False,
            )
        except AuthFailed:
            return False
        return True

    def probe(self) -> CheckResult:
        self.client.v1.customers.list({"limit": 1})
        return CheckResult(True, "Connected to Stripe.")
