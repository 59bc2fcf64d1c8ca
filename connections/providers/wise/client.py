"""Wise's Platform API on the shared HTTP core.

- Auth: a personal API token (a fixed bearer), or an OAuth client's client-credentials token
  from ``POST /oauth/token`` (HTTP Basic client id:secret; 12-hour tokens, renewed ahead by the
  token manager, re-authenticated once on a 401).
- Profiles ``GET /v2/profiles``; the paying profile is the connection's, or its first business
  profile.
- Recipients: ``POST /v1/accounts``; ``GET /v2/accounts`` paged by ``seekPosition`` until
  ``seekPositionForNext`` is null; ``GET``/``DELETE /v2/accounts/{id}``.  Recipients are
  immutable: changed bank details are a delete and a new recipient.  Deleting one that is
  already inactive answers 403 (docs.wise.com/api-reference/recipient, "Deactivate a recipient
  account"), so a refused delete is settled by reading the recipient back, never by wording.
- Which fields a recipient needs: ``GET /v1/account-requirements?source&target&sourceAmount``
  with ``Accept-Minor-Version: 1`` (v1.1 adds the holder name to the form) — a list of
  recipient types, each with ``fields[].group[]`` of ``key``, ``required``, ``minLength``,
  ``maxLength``, ``validationRegexp`` and ``valuesAllowed`` (docs.wise.com/api-reference/
  recipient, "Retrieve recipient account requirements dynamically").  The route form asks for
  no quote, so working out a recipient makes none.
- Quotes ``POST /v3/profiles/{profile}/quotes`` (a UUID, the rate held 30 minutes), saying how
  the transfer will be paid (``preferredPayIn``).  Wise lists no quotes: one whose answer was
  lost cannot be looked up (``GET`` needs its id).
- Transfers are read only (``GET /v1/transfers``, ``offset``/``limit`` ≤ 100, and by id):
  making and funding one stays with a person in Wise.
- Errors: ``{"errors": [{"code", "message", "path"}]}`` (and OAuth's ``error_description``)
  become plain reasons (the shared client reads both shapes).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from typing import Any

from connections.providers.base import CheckResult, HttpProvider, InboundEvent
from connections.providers.errors import ApiError, NotFound
from connections.providers.http import Auth, ClientConfig
from connections.providers.oauth import Grant, client_credentials_grant
from connections.providers.wise import webhooks
from connections.providers.wise.credentials import HOSTS, SPEC

logger = logging.getLogger(__name__)

PAGE_SIZE = 100  # recipients per page, and the most transfers Wise lists at once


def json_number(amount: str) -> int | float:
    """A decimal amount as a JSON number with the digits it has (``"1250.40"`` → 1250.4,
    ``"1000"`` → 1000): a float only where it has decimals, which it then prints exactly."""
    text = str(amount).strip()
    return int(text) if text.lstrip("-").isdigit() else float(text)


class TokenAuth:
    """A personal API token: the same bearer on every request (a 401 cannot be cured)."""

    def __init__(self, token: str) -> None:
        self.token = token

    def apply(self, headers: dict[str, str]) -> str | None:
        headers["Authorization"] = f"Bearer {self.token}"
        return self.token

    def on_unauthorized(self, used: str | None) -> None:
        return None


class WiseProvider(HttpProvider):
    """One Wise account (its profiles) in the sandbox or live environment."""

    kind = "wise"
    label = "Wise"
    spec = SPEC
    secret_patterns = (
        # personal tokens and OAuth access tokens are UUIDs; never show one in full
        (re.compile(r"(?i)\b(bearer\s+)[0-9a-f]{8}-[0-9a-f-]{27,}"), r"\1***"),
    )
    webhook_max_bytes = 64 * 1024  # Wise's events are a few hundred bytes
    webhook_help = "Wise > Settings > Developer tools > Webhooks (or the subscriptions API)"
    webhook_headers = (webhooks.SIGNATURE_HEADER, webhooks.DELIVERY_HEADER, "X-Test-Notification")

    @property
    def base_url(self) -> str:
        explicit = (self.connection.settings or {}).get("base_url")
        return str(explicit or HOSTS[self.connection.setting("environment")]).rstrip("/")

    def client_config(self) -> ClientConfig:
        return ClientConfig.from_connection(self.connection, base_url=self.base_url)

    def grant(self) -> Grant | None:
        creds = self.connection.credentials or {}
        if creds.get("api_token"):
            return None
        return client_credentials_grant(
            f"{self.base_url}/oauth/token",
            str(creds.get("client_id") or ""),
            str(creds.get("client_secret") or ""),
            client_auth="basic",
        )

    def build_auth(self) -> Auth | None:
        token = (self.connection.credentials or {}).get("api_token")
        return TokenAuth(str(token)) if token else super().build_auth()

    def verify_webhook(self, raw_body: bytes, headers: Mapping[str, str]) -> InboundEvent:
        key = (
            self.connection.setting("webhook_public_key")
            or webhooks.PUBLISHED_KEYS[self.connection.setting("environment")]
        )
        return webhooks.verify(str(key), raw_body, headers)

    # -- profiles ---------------------------------------------------------------------------

    def profiles(self) -> list[dict[str, Any]]:
        body = self.http.get("/v2/profiles").json()
        if not isinstance(body, list):
            raise ApiError("Wise answered something that is not a list of profiles.")
        return [p for p in body if isinstance(p, dict)]

    def profile_id(self) -> int:
        """The paying profile: the connection's, or the first business profile."""
        configured = self.connection.setting("profile_id")
        if configured:
            return int(configured)
        if not hasattr(self, "_profile"):
            business = [p for p in self.profiles() if str(p.get("type")).upper() == "BUSINESS"]
            if not business:
                raise ApiError("This Wise account has no business profile to pay from.")
            self._profile = int(business[0]["id"])
        return self._profile

    # -- recipients -------------------------------------------------------------------------

    def list_recipients(self, *, currency: str | None = None) -> Iterator[dict[str, Any]]:
        """Every recipient of the profile (of one currency), page by page (seek paging)."""
        params: dict[str, Any] = {"profileId": self.profile_id(), "size": PAGE_SIZE}
        if currency:
            params["currency"] = currency
        seen: set[Any] = set()
        while True:
            body = self.http.get("/v2/accounts", params=params).json()
            content = body.get("content") if isinstance(body, dict) else None
            if not isinstance(content, list):
                raise ApiError("Wise answered something that is not a page of recipients.")
            yield from (r for r in content if isinstance(r, dict))
            seek = body.get("seekPositionForNext")
            if seek is None or seek in seen or not content:
                return
            seen.add(seek)
            params["seekPosition"] = seek

    def create_recipient(self, recipient: Mapping[str, Any]) -> dict[str, Any]:
        """A new recipient (not idempotent in Wise: the posting ledger guards it)."""
        body = {**recipient, "profile": self.profile_id()}
        created = self.http.post("/v1/accounts", json=body).json()
        if not isinstance(created, dict) or "id" not in created:
            raise ApiError("Wise answered a recipient without an id.")
        return created

    def get_recipient(self, recipient_id: int | str) -> dict[str, Any] | None:
        """One recipient as v2 shows it (``active`` false once deleted); None when unknown."""
        try:
            found = self.http.get(f"/v2/accounts/{int(recipient_id)}").json()
        except NotFound:
            return None
        if not isinstance(found, dict):
            raise ApiError("Wise answered something that is not a recipient.")
        return found

    def delete_recipient(self, recipient_id: int | str) -> bool:
        """Delete a recipient; False when Wise no longer has it active (deleted before).

        Wise answers 403 for one already inactive (404 may come for one it never had): either
        refusal is settled by reading the recipient back, so another refusal is not taken for
        "already gone"."""
        try:
            self.http.request("DELETE", f"/v2/accounts/{int(recipient_id)}")
        except ApiError as refused:  # 403 reads as an auth failure to the shared client
            if refused.status not in (403, 404):
                raise
            found = self.get_recipient(recipient_id)
            if found is None or found.get("active") is False:
                return False
            raise
        return True

    def account_requirements(
        self, *, source_currency: str, target_currency: str, source_amount: int = 1000
    ) -> list[dict[str, Any]]:
        """The recipient types Wise offers for this route and the fields each needs."""
        body = self.http.get(
            "/v1/account-requirements",
            params={
                "source": source_currency,
                "target": target_currency,
                "sourceAmount": source_amount,
            },
            headers={"Accept-Minor-Version": "1"},
        ).json()
        if not isinstance(body, list):
            raise ApiError("Wise answered something that is not a list of recipient types.")
        return [t for t in body if isinstance(t, dict) and isinstance(t.get("type"), str)]

    # -- quotes and transfers ---------------------------------------------------------------

    def create_quote(
        self,
        *,
        source_currency: str,
        target_currency: str,
        target_amount: str,
        target_account: int | None = None,
        pay_in: str = "BALANCE",
    ) -> dict[str, Any]:
        """A quote paying ``target_amount`` (major units, as text, never more decimals than the
        currency has) in ``target_currency``, funded by ``pay_in``."""
        body: dict[str, Any] = {
            "sourceCurrency": source_currency,
            "targetCurrency": target_currency,
            "targetAmount": json_number(target_amount),
            "preferredPayIn": pay_in,
        }
        if target_account is not None:
            body["targetAccount"] = int(target_account)
        quote = self.http.post(f"/v3/profiles/{self.profile_id()}/quotes", json=body).json()
        if not isinstance(quote, dict) or not quote.get("id"):
            raise ApiError("Wise answered a quote without an id.")
        return quote

    def get_transfer(self, transfer_id: int | str) -> dict[str, Any]:
        return dict(self.http.get(f"/v1/transfers/{int(transfer_id)}").json())

    def list_transfers(self, *, status: str | None = None) -> Iterator[dict[str, Any]]:
        """The profile's transfers, newest first, ``PAGE_SIZE`` at a time."""
        params: dict[str, Any] = {"profile": self.profile_id(), "limit": PAGE_SIZE, "offset": 0}
        if status:
            params["status"] = status
        while True:
            page = self.http.get("/v1/transfers", params=params).json()
            if not isinstance(page, list):
                raise ApiError("Wise answered something that is not a list of transfers.")
            yield from (t for t in page if isinstance(t, dict))
            if len(page) < PAGE_SIZE:
                return
            params["offset"] += len(page)

    def probe(self) -> CheckResult:
        profiles = self.profiles()
        names = ", ".join(f"{str(p.get('type', '?')).lower()} {p.get('id')}" for p in profiles[:5])
        return CheckResult(True, f"Connected to Wise: profiles {names or 'none'}.")
