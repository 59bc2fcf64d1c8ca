"""Cin7 Core's API v2 on the shared HTTP core.

- Auth: the ``api-auth-accountid`` and ``api-auth-applicationkey`` headers on every call (403
  when they are wrong).
- Reads page by ``Page``/``Limit`` (up to 1,000 a page) until ``Total`` is reached, and
  incrementally by ``ModifiedSince`` (ISO 8601, UTC) where an endpoint has it.
- Rate limit: 60 calls a minute per application key, shared by every worker (the connection's
  rate limiter); Cin7 answers the limit with 503 (documented) or 429 (seen by clients): both are
  "slow down" — waited out and retried, never mistaken for a write that may have gone through.
- Errors: ``[{"ErrorCode": 400, "Exception": "…"}]`` become plain reasons.
- Purchases: ``POST /purchase`` (an Approach), then ``POST /purchase/order`` (authorised, with
  the ``Memo`` its model table requires), then ``POST /purchase/invoice`` — the invoice is refused
  unless the order is authorised (a rule the endpoint's description states, not its schema).
  Their state is read back by ``GET /purchase/order`` / ``GET /purchase/invoice?TaskID=``; a
  purchase is found again by ``purchaseList``'s ``Search``, which covers only OrderNumber,
  Status, Supplier, InvoiceNumber and CreditNoteNumber, then read back by its ID.
- Tax rules (``GET /ref/tax``): each line's ``Tax`` is what its rule's ``TaxPercent`` gives.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

import requests

from connections.providers.base import CheckResult, HttpProvider
from connections.providers.cin7.credentials import SPEC
from connections.providers.errors import ApiError, RateLimited
from connections.providers.http import ApiClient

logger = logging.getLogger(__name__)

PAGE_LIMIT = 1000


class _Cin7Api(ApiClient):
    """Cin7 answers its rate limit with 503 (documented) as well as 429: both mean slow down,
    never "a write that may have gone through"."""

    error_map = MappingProxyType({429: RateLimited, 503: RateLimited})  # 503: "slow down"


class Cin7Core(HttpProvider):
    """One Cin7 Core account, through one API application key."""

    kind = "cin7"
    label = "Cin7 Core"
    keeps_books = True
    spec = SPEC
    secret_keys = ("application_key", "api-auth-applicationkey")
    secret_patterns = (
        (
            re.compile(r"(?i)(api-auth-applicationkey[\"']?\s*[:=]\s*[\"']?)[0-9a-f-]{8,}"),
            r"\1***",
        ),
    )
    api_client_class = _Cin7Api

    def default_headers(self) -> dict[str, str]:
        creds = self.connection.credentials or {}
        return {
            "Accept": "application/json",
            "api-auth-accountid": str(creds.get("account_id") or ""),
            "api-auth-applicationkey": str(creds.get("application_key") or ""),
        }

    # -- reads ------------------------------------------------------------------------------

    def pages(
        self, path: str, list_key: str, *, limit: int = PAGE_LIMIT, **params: Any
    ) -> Iterator[dict[str, Any]]:
        """Every record of a paged list, ``limit`` (≤ 1,000) a page, until ``Total``."""
        page, seen = 1, 0
        query = {k: v for k, v in params.items() if v not in (None, "")}
        while True:
            body = self.http.get(
                path, params={**query, "Page": page, "Limit": min(int(limit), PAGE_LIMIT)}
            ).json()
            rows = body.get(list_key) if isinstance(body, dict) else None
            if not isinstance(rows, list):
                raise ApiError(f"Cin7 Core answered something that is not a {list_key} page.")
            yield from (r for r in rows if isinstance(r, dict))
            seen += len(rows)
            if not rows or seen >= int(body.get("Total") or 0):
                return
            page += 1

    def list_suppliers(self, *, modified_since: str | None = None) -> Iterator[dict[str, Any]]:
        return self.pages("supplier", "SupplierList", ModifiedSince=modified_since)

    def list_tax_rules(self) -> list[dict[str, Any]]:
        """Cin7's tax rules (name, TaxPercent, active, for purchases or sales)."""
        return list(self.pages("ref/tax", "TaxRuleList"))

    def get_order(self, task_id: str) -> dict[str, Any]:
        """A purchase's order as Cin7 holds it now (status, lines, totals)."""
        return self._one(self.http.get("purchase/order", params={"TaskID": task_id}))

    def get_invoice(self, task_id: str) -> dict[str, Any]:
        """A purchase's invoice as Cin7 holds it now (status, number, lines, totals)."""
        return self._one(self.http.get("purchase/invoice", params={"TaskID": task_id}))

    def list_accounts(self) -> list[dict[str, Any]]:
        """The chart of accounts (read only for an integration)."""
        return list(self.pages("ref/account", "AccountsList"))

    def chart_of_accounts(self) -> dict[str, str]:
        """Capability ``ChartOfAccounts``: each account's code with its name."""
        return {str(a.get("Code")): str(a.get("Name") or "") for a in self.list_accounts()}

    # -- writes -----------------------------------------------------------------------------

    def _one(self, response: requests.Response, list_key: str | None = None) -> dict[str, Any]:
        body = response.json()
        if list_key and isinstance(body, dict) and isinstance(body.get(list_key), list):
            rows = body[list_key]
            if rows and isinstance(rows[0], dict):
                return rows[0]
        if isinstance(body, dict):
            return body
        raise ApiError("Cin7 Core answered something that is not a record.")

    def create_supplier(self, supplier: Mapping[str, Any]) -> dict[str, Any]:
        return self._one(self.http.post("supplier", json=dict(supplier)), "SupplierList")

    def update_supplier(self, supplier: Mapping[str, Any]) -> dict[str, Any]:
        return self._one(self.http.request("PUT", "supplier", json=dict(supplier)), "SupplierList")

    def create_purchase(self, purchase: Mapping[str, Any]) -> dict[str, Any]:
        return self._one(self.http.post("purchase", json=dict(purchase)))

    def authorise_order(
        self, task_id: str, lines: list[Mapping[str, Any]], *, memo: str
    ) -> dict[str, Any]:
        """The purchase's order, authorised (an order line carries no GL account, and the
        contract wants a SupplierSKU on it, blank for a service line; the order a Memo)."""
        order_lines = [
            {"SupplierSKU": "", **{k: v for k, v in line.items() if k != "Account"}}
            for line in lines
        ]
        body = {"TaskID": task_id, "Status": "AUTHORISED", "Memo": memo, "Lines": order_lines}
        return self._one(self.http.post("purchase/order", json=body))

    def create_purchase_invoice(self, invoice: Mapping[str, Any]) -> dict[str, Any]:
        return self._one(self.http.post("purchase/invoice", json=dict(invoice)))

    def find_purchases(self, search: str) -> list[dict[str, Any]]:
        """Purchases Cin7 finds for ``search`` (its order number, supplier, invoice number…)."""
        return list(self.pages("purchaseList", "PurchaseList", Search=search))

    def get_purchase(self, task_id: str) -> dict[str, Any]:
        return self._one(self.http.get("purchase", params={"ID": task_id}))

    def probe(self) -> CheckResult:
        me = self._one(self.http.get("me"))
        return CheckResult(True, f"Connected to Cin7 Core: {me.get('Company') or 'account'}.")
