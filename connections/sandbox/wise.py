"""A stateful Wise (Platform API) simulator.

Follows ``../shared/contracts/README.md`` (Wise): ``POST /oauth/token`` (client credentials, HTTP
Basic; 12-hour tokens) or a personal API token; ``GET /v2/profiles``; recipients created with
``POST /v1/accounts``, listed with ``GET /v2/accounts`` by ``seekPosition``/``seekPositionForNext``
(null on the last page), read with ``GET /v2/accounts/{id}`` and deleted with ``DELETE
/v2/accounts/{id}`` (immutable: nothing else changes one); account requirements ``GET
/v1/account-requirements``; quotes ``POST /v3/profiles/{id}/quotes`` (a UUID, the rate held 30
minutes) and ``GET /v3/profiles/{id}/quotes/{quoteId}``; transfers read with ``GET
/v1/transfers`` (``limit`` at most 100) and by id.

Every rule kept here cites its source; where the source is silent the least convenient reading a
real Wise may take is kept (and said so):
- Recipient forms (``FORMS``) come from docs.wise.com/api-reference/recipient ("Create a
  recipient account": GBP sort code and account number; IBAN for BGN, CHF, DKK, EUR, GEL, GBP,
  NOK, PKR, PLN, RON, SEK; USD routing number, account number and account type; "Recipient
  address data is required only if target currency is USD, PHP, THB or TRY, or if the source
  currency is USD or AUD") and its requirements example (``address.country``, ``city``,
  ``firstLine``, ``postCode``).  ``POST /v1/accounts`` requires every field the form marks
  required; the form's own patterns are checked.  The address is required for those target
  currencies (a recipient has no source currency; the requirements answer adds it for USD and
  AUD sources).  ``address.state`` is required for US, CA, BR and AU addresses
  (docs.wise.com/api-reference/address: "State field is required for US, CA, BR and AU").
- ``GET /v2/accounts`` answers the v2 resource (docs.wise.com/api-reference/recipient, v2:
  ``name.fullName``, ``type`` as ``SortCode``, ``legalEntityType``, camelCase ``details`` such as
  ``sortCode``/``accountNumber``).  Silent on an IBAN recipient's keys, so the least convenient:
  ``iban`` in lower case, and no BIC (Wise may derive it).
- Deleting a recipient already inactive answers 403 (same page, "Deactivate a recipient
  account"); an inactive one is still read by id, with ``active`` false.
- Quotes (docs.wise.com/api-reference/quote): exactly one of ``sourceAmount`` and
  ``targetAmount`` ("Either … is required, never both"); an amount with more decimals than the
  currency has (ISO 4217 minor units) is refused; ``targetAccount`` must be an active recipient
  of that profile in the target currency; ``preferredPayIn`` is kept on the quote (so tests can
  see a balance-funded transfer was quoted as one).
- Errors are ``{"errors": [{"code", "message", "path"}]}`` with neutral texts: a client decides
  from ``path`` and from state it reads back, never from a message's wording.  What a request
  got wrong is kept in ``violations`` for the tests.
- Any create can lose its answer after it is committed (the shared ``lose_response`` fault).

A person's side is sandbox actions: ``/_sandbox/transfer`` makes a transfer from a quote,
``/_sandbox/transfer_state`` moves it on.  Every state change is delivered to the registered
webhook endpoints as Wise delivers them: ``transfers#state-change`` (schema 2.0.0) signed with
RSA-SHA256 PKCS#1 v1.5 by this simulator's own key (``X-Signature-SHA256``, base64), with an
``X-Delivery-Id``; deliveries can be duplicated (the same id, or — ``redeliver`` — a new id for
the same body), reordered or badly signed.
"""

from __future__ import annotations

import base64
import copy
import json
import logging
import re
import secrets
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from werkzeug.wrappers import Request, Response

from connections.sandbox.base import Simulator, json_response

logger = logging.getLogger(__name__)

TOKEN_SECONDS = 43199
PAGE_MAX = 100
CURRENCIES = {"EUR", "GBP", "USD", "SEK", "NOK", "DKK", "CHF", "PLN", "JPY", "AUD", "CAD"}
# ISO 4217 minor units of the currencies served (quotes refuse more decimals than these).
MINOR_UNITS = {c: 2 for c in CURRENCIES} | {"JPY": 0}
IBAN_CURRENCIES = {"EUR", "GBP", "SEK", "NOK", "DKK", "CHF", "PLN"}
ADDRESS_TARGETS = {"USD", "PHP", "THB", "TRY"}
ADDRESS_SOURCES = {"USD", "AUD"}
STATE_COUNTRIES = {"US", "CA", "BR", "AU"}
COUNTRIES = (
    "AT BE CH DE DK ES FI FR GB IE IT NL NO PL PT SE US CA AU BR JP PH TH TR IN CN"
).split()
PAY_IN = {"BALANCE", "BANK_TRANSFER", "DEBIT", "CREDIT", "SWIFT", "DIRECT_DEBIT"}


def _field(key: str, name: str, *, required: bool = True, **more: Any) -> dict[str, Any]:
    """One field of a requirements answer, in the shape Wise's example shows."""
    item = {
        "key": key,
        "name": name,
        "type": more.pop("type", "text"),
        "refreshRequirementsOnChange": more.pop("refresh", False),
        "required": required,
        "displayFormat": None,
        "example": more.pop("example", ""),
        "minLength": more.pop("min_length", None),
        "maxLength": more.pop("max_length", None),
        "validationRegexp": more.pop("pattern", None),
        "validationAsync": None,
        "valuesAllowed": more.pop("allowed", None),
    }
    return {"name": name, "group": [item]}


LEGAL = _field(
    "legalType",
    "Recipient type",
    type="select",
    allowed=[{"key": "PRIVATE", "name": "Person"}, {"key": "BUSINESS", "name": "Business"}],
)
HOLDER = _field(
    "accountHolderName",
    "Full Name",
    min_length=2,
    max_length=140,
    pattern="^[0-9A-Za-zÀ-ÖØ-öø-ÿ-_()'*,.%#^@{}~<>+$\"\\[\\]\\\\ ]+$",
)
ADDRESS = [
    _field(
        "address.country",
        "Country",
        type="select",
        refresh=True,
        allowed=[{"key": c, "name": c} for c in COUNTRIES],
    ),
    _field("address.city", "City", min_length=1, max_length=255, pattern="^.{1,255}$"),
    _field(
        "address.firstLine", "Recipient address", min_length=1, max_length=255, pattern="^.{1,255}$"
    ),
    _field("address.postCode", "Post code", min_length=1, max_length=32, pattern="^.{1,32}$"),
]
BANK_FIELDS = {
    "iban": [
        _field(
            "IBAN",
            "IBAN",
            min_length=14,
            max_length=42,
            pattern="^[a-zA-Z]{2}[0-9]{2}[a-zA-Z0-9 ]{4}[0-9 ]{7}([a-zA-Z0-9 ]?){0,23}$",
        ),
        _field(
            "BIC",
            "Bank code (BIC/SWIFT)",
            required=False,
            pattern="^[a-zA-Z]{6}[a-zA-Z0-9]{2}([a-zA-Z0-9]{3})?$",
        ),
    ],
    "sort_code": [
        _field("sortCode", "UK sort code", pattern="^[0-9]{2}-?[0-9]{2}-?[0-9]{2}$"),
        _field("accountNumber", "Account number", pattern="^[0-9]{8}$"),
    ],
    "aba": [
        _field("abartn", "ACH routing number", pattern="^[0-9]{9}$"),
        _field("accountNumber", "Account number", min_length=4, max_length=17),
        _field(
            "accountType",
            "Account type",
            type="radio",
            allowed=[
                {"key": "CHECKING", "name": "Checking"},
                {"key": "SAVINGS", "name": "Savings"},
            ],
        ),
    ],
    "swift_code": [
        _field(
            "swiftCode", "SWIFT / BIC code", pattern="^[a-zA-Z]{6}[a-zA-Z0-9]{2}([a-zA-Z0-9]{3})?$"
        ),
        _field("accountNumber", "IBAN / Account Number", min_length=1, max_length=34),
    ],
}
TITLES = {"iban": "IBAN", "sort_code": "Local bank account", "aba": "ACH", "swift_code": "SWIFT"}
V2_TYPES = {"iban": "Iban", "sort_code": "SortCode", "aba": "Aba", "swift_code": "SwiftCode"}


def forms(target: str, source: str | None) -> dict[str, list[dict[str, Any]]]:
    """The recipient types (and their fields) a payment into ``target`` may use."""
    if target == "GBP":
        kinds = ["sort_code", "iban"]
    elif target in IBAN_CURRENCIES:
        kinds = ["iban"]
    elif target == "USD":
        kinds = ["aba", "swift_code"]
    else:
        kinds = ["swift_code"]
    address = target in ADDRESS_TARGETS or (source or "") in ADDRESS_SOURCES
    return {k: [LEGAL, *BANK_FIELDS[k], *(ADDRESS if address else [])] for k in kinds}


STATES = (
    "incoming_payment_waiting",
    "incoming_payment_initiated",
    "processing",
    "funds_converted",
    "outgoing_payment_sent",
    "charged_back",
    "cancelled",
    "funds_refunded",
    "bounced_back",
)
PROFILE_ID = 16055450
# The happy path a funded transfer takes (the demo's person moves each one a step per tick).
NEXT_STATE = {
    "incoming_payment_waiting": "processing",
    "processing": "funds_converted",
    "funds_converted": "outgoing_payment_sent",
}


def iban_valid(value: str) -> bool:
    """ISO 13616: country, check digits, then the account; mod 97 of the rearranged number = 1."""
    text = re.sub(r"\s+", "", value).upper()
    if not re.fullmatch(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{10,30}", text):
        return False
    digits = "".join(str(int(c, 36)) for c in text[4:] + text[:4])
    return int(digits) % 97 == 1


def now_iso(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


class WiseError(Exception):
    def __init__(self, status: int, code: str, message: str, path: str = "") -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.path = status, code, message, path

    def response(self) -> Response:
        error = {"code": self.code, "message": self.message}
        if self.path:
            error["path"] = self.path
        return json_response({"errors": [error]}, self.status)


class WiseSimulator(Simulator):
    """One Wise account with a business and a personal profile."""

    name = "wise"
    kind = "wise"
    label = "Wise"
    default_port = 8104

    def __init__(self, *, rate_limit_per_minute: int | None = None) -> None:
        super().__init__(rate_limit_per_minute=rate_limit_per_minute)
        self.api_token = str(uuid.uuid4())
        self.client_id = "mlc-sandbox"
        self.client_secret = secrets.token_urlsafe(18)
        self.tokens: dict[str, float] = {}
        self.token_requests = 0
        self.api_requests = 0
        self.signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.profiles = [
            {"id": PROFILE_ID, "type": "BUSINESS", "details": {"name": "ML Connector Demo AB"}},
            {"id": PROFILE_ID - 1, "type": "PERSONAL", "details": {"firstName": "Ada"}},
        ]
        self.recipients: dict[int, dict[str, Any]] = {}
        self.quotes: dict[str, dict[str, Any]] = {}
        self.transfers: dict[int, dict[str, Any]] = {}
        self.next_id = 40000000
        self.endpoints: list[str] = []
        self.deliveries: list[dict[str, Any]] = []  # what was sent, for tests
        self.duplicate = False  # send every delivery twice (a retry after a lost 2xx)
        self.reorder = False  # send a batch of state changes newest first
        self.bad_signature = False  # sign with a key that is not Wise's
        self.synchronous = False
        self.redeliver = False  # send every delivery again under a new X-Delivery-Id
        self.violations: list[str] = []  # what requests got wrong (the tests assert none)

    # -- keys -------------------------------------------------------------------------------

    @property
    def public_key_pem(self) -> str:
        return (
            self.signing_key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    def sign(self, body: bytes, key: rsa.RSAPrivateKey | None = None) -> str:
        signature = (key or self.signing_key).sign(body, padding.PKCS1v15(), hashes.SHA256())
        return base64.b64encode(signature).decode()

    # -- HTTP -------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        if request.path == "/oauth/token":
            return self._token(request)
        auth = request.headers.get("Authorization", "")
        token = auth[7:] if auth.lower().startswith("bearer ") else ""
        with self.lock:
            valid = token == self.api_token or self.tokens.get(token, 0) > time.time()
        if not valid:
            return json_response(
                {"error": "invalid_token", "error_description": "Invalid token"}, 401
            )
        if self.rate_limit.check(token) is not None:
            return WiseError(429, "TOO_MANY_REQUESTS", "Too many requests").response()
        with self.lock:
            self.api_requests += 1
        return self.apply_fault(f"{request.method} {request.path}", lambda: self._route(request))

    def _token(self, request: Request) -> Response:
        with self.lock:
            self.token_requests += 1
        auth = request.authorization
        if auth is None or (auth.username, auth.password) != (self.client_id, self.client_secret):
            return json_response(
                {"error": "invalid_client", "error_description": "Bad client credentials"}, 401
            )
        if request.form.get("grant_type") != "client_credentials":
            return json_response({"error": "unsupported_grant_type"}, 400)
        token = str(uuid.uuid4())
        with self.lock:
            self.tokens[token] = time.time() + TOKEN_SECONDS
        return json_response(
            {
                "access_token": token,
                "token_type": "bearer",
                "expires_in": TOKEN_SECONDS,
                "scope": "transfers",
            }
        )

    def expire_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    def _route(self, request: Request) -> Response:
        path, method = request.path.rstrip("/"), request.method
        try:
            with self.lock:
                if path == "/v2/profiles" and method == "GET":
                    return json_response(self.profiles)
                if path == "/v1/accounts" and method == "POST":
                    return json_response(self._create_recipient(self._json(request)))
                if path == "/v2/accounts" and method == "GET":
                    return json_response(self._list_recipients(request.args))
                match = re.fullmatch(r"/v2/accounts/(\d+)", path)
                if match and method == "DELETE":
                    return self._delete_recipient(int(match.group(1)))
                if match and method == "GET":
                    found = self._recipient(int(match.group(1)), active=False)
                    return json_response(self._v2(found))
                if path == "/v1/account-requirements" and method == "GET":
                    minor = request.headers.get("Accept-Minor-Version", "")
                    return json_response(self._requirements(request.args, minor))
                match = re.fullmatch(r"/v3/profiles/(\d+)/quotes", path)
                if match and method == "POST":
                    quote = self._quote(int(match.group(1)), self._json(request))
                    return json_response(quote)
                match = re.fullmatch(r"/v3/profiles/(\d+)/quotes/([0-9a-f-]{36})", path)
                if match and method == "GET":
                    found = self.quotes.get(match.group(2))
                    if found is None or found["profile"] != self._profile(match.group(1)):
                        raise WiseError(404, "NOT_FOUND", "The resource was not found.")
                    return json_response(found)
                if path == "/v1/transfers" and method == "GET":
                    return json_response(self._list_transfers(request.args))
                match = re.fullmatch(r"/v1/transfers/(\d+)", path)
                if match and method == "GET":
                    found = self.transfers.get(int(match.group(1)))
                    if found is None:
                        raise WiseError(404, "NOT_FOUND", "Transfer not found")
                    return json_response(found)
        except WiseError as exc:
            return exc.response()
        return WiseError(404, "NOT_FOUND", f"No such endpoint: {method} {path}").response()

    @staticmethod
    def _json(request: Request) -> dict[str, Any]:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise WiseError(400, "BAD_REQUEST", "The body must be a JSON object.")
        return body

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id

    def _profile(self, value: Any) -> int:
        try:
            profile = int(value)
        except (TypeError, ValueError):
            raise WiseError(422, "NOT_VALID", "Profile is required.", "profile") from None
        if profile not in {p["id"] for p in self.profiles}:
            raise WiseError(403, "FORBIDDEN", "You cannot act for this profile.", "profile")
        return profile

    # -- recipients -------------------------------------------------------------------------

    def _refuse(self, path: str, why: str, status: int = 422) -> WiseError:
        """A neutral refusal naming the field (``path``); ``why`` goes to ``violations``."""
        self.violations.append(f"{path or 'request'}: {why}")
        return WiseError(status, "NOT_VALID", "The request is not valid.", path)

    def _requirements(self, args: Any, minor_version: str) -> list[dict[str, Any]]:
        target, source = str(args.get("target") or ""), str(args.get("source") or "")
        if target not in CURRENCIES or source not in CURRENCIES:
            raise self._refuse("target", f"source {source!r} / target {target!r} not served")
        try:
            amount = Decimal(str(args.get("sourceAmount")))
        except InvalidOperation:
            raise self._refuse("sourceAmount", "sourceAmount is not a number") from None
        if not amount.is_finite() or amount <= 0:
            raise self._refuse("sourceAmount", "sourceAmount must be above zero")
        v11 = minor_version == "1"
        return [
            {
                "type": kind,
                "title": TITLES[kind],
                "usageInfo": None,
                "fields": [*([HOLDER] if v11 else []), *fields],
            }
            for kind, fields in forms(target, source).items()
        ]

    def _create_recipient(self, body: dict[str, Any]) -> dict[str, Any]:
        profile = self._profile(body.get("profile"))
        currency = str(body.get("currency") or "")
        if currency not in CURRENCIES:
            raise self._refuse("currency", f"currency {currency!r} not served")
        kind = str(body.get("type") or "")
        offered = forms(currency, None)
        if kind not in offered:
            raise self._refuse("type", f"type {kind!r} is not offered for {currency}")
        holder = body.get("accountHolderName")
        if not isinstance(holder, str) or len(holder.strip()) < 2:
            raise self._refuse("accountHolderName", "no holder name of 2 characters or more")
        details = body.get("details")
        if not isinstance(details, dict):
            raise self._refuse("details", "no details object")
        for field in (g for f in offered[kind] for g in f["group"]):
            value: Any = details
            for part in field["key"].split("."):
                value = value.get(part) if isinstance(value, dict) else None
            text = str(value or "").strip()
            if not text:
                if field["required"]:
                    raise self._refuse(field["key"], f"{field['key']} is required for {kind}")
                continue
            allowed = field["valuesAllowed"]
            if allowed and text not in {v["key"] for v in allowed}:
                raise self._refuse(field["key"], f"{text!r} is not an allowed {field['key']}")
            if field["validationRegexp"] and not re.search(field["validationRegexp"], text):
                raise self._refuse(field["key"], f"{text!r} does not match {field['key']}")
        if kind == "iban" and not iban_valid(str(details["IBAN"])):
            raise self._refuse("IBAN", "the IBAN's check digits are wrong")
        address = details.get("address") if isinstance(details.get("address"), dict) else {}
        if address.get("country") in STATE_COUNTRIES and not str(address.get("state") or ""):
            raise self._refuse("address.state", "a US, CA, BR or AU address needs a state")
        recipient = {
            "id": self._id(),
            "business": profile,
            "profile": profile,
            "accountHolderName": holder.strip(),
            "currency": currency,
            "country": (str(details.get("IBAN") or "")[:2].upper() or address.get("country")),
            "type": kind,
            "details": copy.deepcopy(details),
            "user": 1,
            "active": True,
            "ownedByCustomer": False,
        }
        self.recipients[recipient["id"]] = recipient
        return recipient

    def _recipient(self, recipient_id: int, *, active: bool = True) -> dict[str, Any]:
        found = self.recipients.get(recipient_id)
        if found is None or (active and not found["active"]):
            raise WiseError(404, "NOT_FOUND", "The resource was not found.")
        return found

    @staticmethod
    def _v2(recipient: dict[str, Any]) -> dict[str, Any]:
        """A recipient as the v2 API shows it: camelCase detail keys (``iban``, ``sortCode``),
        no BIC, the type in Wise's v2 spelling."""
        details = {
            k.lower() if k.isupper() else k[:1].lower() + k[1:]: copy.deepcopy(v)
            for k, v in recipient["details"].items()
            if k not in ("legalType", "BIC", "address")
        }
        legal = recipient["details"].get("legalType")
        return {
            "id": recipient["id"],
            "creatorId": recipient["user"],
            "profileId": recipient["profile"],
            "name": {"fullName": recipient["accountHolderName"]},
            "currency": recipient["currency"],
            "country": recipient["country"],
            "type": V2_TYPES.get(recipient["type"], recipient["type"]),
            "legalEntityType": "PERSON" if legal == "PRIVATE" else legal,
            "active": recipient["active"],
            "details": details,
            "ownedByCustomer": False,
        }

    def _list_recipients(self, args: Any) -> dict[str, Any]:
        profile = self._profile(args.get("profileId"))
        try:
            size = max(1, min(PAGE_MAX, int(args.get("size", 20))))
            after = int(args.get("seekPosition", 0))
        except ValueError:
            raise WiseError(400, "BAD_REQUEST", "size and seekPosition are numbers.") from None
        currency = args.get("currency")
        rows = sorted(
            (
                r
                for r in self.recipients.values()
                if r["active"]
                and r["profile"] == profile
                and (not currency or r["currency"] == currency)
            ),
            key=lambda r: r["id"],
        )
        rows = [r for r in rows if r["id"] > after]
        page = rows[:size]
        more = len(rows) > size
        return {
            "content": [self._v2(r) for r in page],
            "seekPositionForNext": page[-1]["id"] if more else None,
            "size": len(page),
        }

    def _delete_recipient(self, recipient_id: int) -> Response:
        found = self._recipient(recipient_id, active=False)
        if not found["active"]:  # "already inactive will return an HTTP status 403"
            return WiseError(403, "FORBIDDEN", "The request is not allowed.").response()
        found["active"] = False
        return json_response(self._v2(found))

    # -- quotes and transfers ---------------------------------------------------------------

    def _quote(self, profile_id: int, body: dict[str, Any]) -> dict[str, Any]:
        profile = self._profile(profile_id)
        source, target = body.get("sourceCurrency"), body.get("targetCurrency")
        for name, value in (("sourceCurrency", source), ("targetCurrency", target)):
            if value not in CURRENCIES:
                raise self._refuse(name, f"{name} {value!r} is not served")
        given = [f for f in ("sourceAmount", "targetAmount") if body.get(f) is not None]
        if len(given) != 1:
            raise self._refuse("targetAmount", "exactly one of sourceAmount and targetAmount")
        field = given[0]
        raw = body[field]
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise self._refuse(field, f"{field} is not a number")
        amount = Decimal(str(raw))
        if not amount.is_finite() or amount <= 0:
            raise self._refuse(field, f"{field} must be above zero")
        currency = source if field == "sourceAmount" else target
        if -amount.normalize().as_tuple().exponent > MINOR_UNITS[str(currency)]:
            raise self._refuse(field, f"{amount} has more decimals than {currency} has")
        pay_in = body.get("preferredPayIn")
        if pay_in is not None and pay_in not in PAY_IN:
            raise self._refuse("preferredPayIn", f"{pay_in!r} is not a pay-in method")
        account = body.get("targetAccount")
        if account is not None:
            if isinstance(account, bool) or not isinstance(account, int):
                raise self._refuse("targetAccount", "targetAccount is a recipient id (a number)")
            recipient = self.recipients.get(account)
            if (
                recipient is None
                or not recipient["active"]
                or recipient["profile"] != profile
                or recipient["currency"] != target
            ):
                raise self._refuse(
                    "targetAccount", "not an active recipient of this profile in the target"
                )
        rate = Decimal("1") if source == target else Decimal("1.0875")
        other_currency = str(target if field == "sourceAmount" else source)
        other = (amount / rate if field == "targetAmount" else amount * rate).quantize(
            Decimal(1).scaleb(-MINOR_UNITS[other_currency])
        )
        created = datetime.now(UTC)
        quote = {
            "id": str(uuid.uuid4()),
            "profile": profile,
            "sourceCurrency": source,
            "targetCurrency": target,
            "sourceAmount": float(other if field == "targetAmount" else amount),
            "targetAmount": float(amount if field == "targetAmount" else other),
            "rate": float(rate),
            "rateType": "FIXED",
            "payOut": "BANK_TRANSFER",
            "status": "PENDING",
            "createdTime": now_iso(created),
            "expirationTime": now_iso(created + timedelta(minutes=30)),
            "targetAccount": account,
            "preferredPayIn": pay_in,
            "providedAmountType": "TARGET" if field == "targetAmount" else "SOURCE",
        }
        self.quotes[quote["id"]] = quote
        return quote

    def _list_transfers(self, args: Any) -> list[dict[str, Any]]:
        profile = self._profile(args.get("profile"))
        try:
            limit = int(args.get("limit", 10))
            offset = int(args.get("offset", 0))
        except ValueError:
            raise WiseError(400, "BAD_REQUEST", "limit and offset are numbers.") from None
        if not 1 <= limit <= PAGE_MAX:
            raise WiseError(400, "BAD_REQUEST", "limit must be between 1 and 100.", "limit")
        status = set(filter(None, str(args.get("status") or "").split(",")))
        rows = [
            t
            for t in sorted(self.transfers.values(), key=lambda t: t["id"], reverse=True)
            if t["user"] == profile and (not status or t["status"] in status)
        ]
        return rows[offset : offset + limit]

    def make_transfer(self, quote_id: str, target_account: int, reference: str) -> dict[str, Any]:
        """A person makes (and will fund) a transfer in Wise from a prepared quote."""
        with self.lock:
            quote = self.quotes.get(quote_id)
            if quote is None:
                raise WiseError(404, "NOT_FOUND", "Quote not found")
            transfer = {
                "id": self._id(),
                "user": quote["profile"],
                "targetAccount": int(target_account),
                "quoteUuid": quote_id,
                "status": "incoming_payment_waiting",
                "reference": reference,
                "rate": quote["rate"],
                "created": now_iso(),
                "sourceCurrency": quote["sourceCurrency"],
                "sourceValue": quote["sourceAmount"],
                "targetCurrency": quote["targetCurrency"],
                "targetValue": quote["targetAmount"],
                "customerTransactionId": str(uuid.uuid4()),
                "details": {"reference": reference},
            }
            self.transfers[transfer["id"]] = transfer
        self.deliver([self._state_event(transfer, None, transfer["status"], datetime.now(UTC))])
        return transfer

    def move(self, transfer_id: int, *states: str) -> list[dict[str, Any]]:
        """Move a transfer through ``states`` (one second apart); their deliveries as a batch."""
        events = []
        with self.lock:
            transfer = self.transfers[transfer_id]
            moment = datetime.now(UTC)
            for state in states:
                if state not in STATES:
                    raise WiseError(400, "BAD_REQUEST", f"Unknown state {state}")
                previous, transfer["status"] = transfer["status"], state
                moment += timedelta(seconds=1)
                events.append(self._state_event(transfer, previous, state, moment))
        self.deliver(events)
        return events

    @staticmethod
    def _state_event(
        transfer: dict[str, Any], previous: str | None, state: str, moment: datetime
    ) -> dict[str, Any]:
        return {
            "data": {
                "resource": {
                    "type": "transfer",
                    "id": transfer["id"],
                    "profile_id": transfer["user"],
                    "account_id": transfer["targetAccount"],
                },
                "current_state": state,
                "previous_state": previous,
                "occurred_at": now_iso(moment),
            },
            "subscription_id": "90aa8e14-4ef1-4a56-861c-f3c9cde097ea",
            "event_type": "transfers#state-change",
            "schema_version": "2.0.0",
            "sent_at": now_iso(),
        }

    # -- webhook delivery -------------------------------------------------------------------

    def deliver(self, events: list[dict[str, Any]]) -> None:
        batch = [(str(uuid.uuid4()), e) for e in events]
        if self.reorder:
            batch.reverse()
        if self.duplicate:
            batch = batch + batch  # the same delivery (same X-Delivery-Id) again
        if self.redeliver:  # the same event again under a new delivery id (not signed over);
            # Wise is silent on whether a resend keeps sent_at: the least convenient, it may not
            later = now_iso(datetime.now(UTC) + timedelta(seconds=1))
            batch = batch + [(str(uuid.uuid4()), {**e, "sent_at": later}) for _, e in batch]
        if not batch or not self.endpoints:
            return
        if self.synchronous:
            self._send(batch)
        else:
            threading.Thread(target=self._send, args=(batch,), daemon=True).start()

    def _send(self, batch: list[tuple[str, dict[str, Any]]]) -> None:
        forger = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            if (self.bad_signature)
            else None
        )
        for delivery_id, event in batch:
            body = json.dumps(event).encode()
            headers = {
                "Content-Type": "application/json",
                "X-Signature-SHA256": self.sign(body, forger),
                "X-Delivery-Id": delivery_id,
            }
            for url in list(self.endpoints):
                try:
                    status = requests.post(url, data=body, headers=headers, timeout=10).status_code
                except requests.RequestException:
                    status = 0
                with self.lock:
                    self.deliveries.append({"id": delivery_id, "url": url, "status": status})

    # -- sandbox controls, demo, state ------------------------------------------------------

    def activity(self, rng: Any) -> str:
        """The demo's finance person at work in Wise: transfers under way move a step on, and
        now and then a transfer is made (and funded) from a quote nobody has used yet."""
        with self.lock:
            moving = [t["id"] for t in self.transfers.values() if t["status"] in NEXT_STATE]
            used = {t["quoteUuid"] for t in self.transfers.values()}
            fresh = [
                q for q in self.quotes.values() if q["id"] not in used and q.get("targetAccount")
            ]
        for transfer_id in moving:
            self.move(transfer_id, NEXT_STATE[self.transfers[transfer_id]["status"]])
        made = ""
        if fresh and rng.random() < 0.5:
            quote = rng.choice(fresh)
            transfer = self.make_transfer(quote["id"], quote["targetAccount"], "ml-connector demo")
            made = f"; transfer {transfer['id']} made from quote {quote['id'][:8]}"
        return f"{len(moving)} transfer(s) moved on{made}" if moving or made else ""

    def control_action(self, request: Request) -> Response:
        p = request.get_json(force=True, silent=True) or {}
        action = request.path.removeprefix("/_sandbox/")
        try:
            if action == "webhook_endpoints":
                if p.get("url") and p["url"] not in self.endpoints:
                    self.endpoints.append(str(p["url"]))
                return json_response({"registered": p.get("url")})
            if action == "transfer":
                return json_response(
                    self.make_transfer(
                        p["quote"], int(p["targetAccount"]), str(p.get("reference", ""))
                    )
                )
            if action == "transfer_state":
                return json_response({"events": self.move(int(p["id"]), *p["states"])})
            if action == "webhook_mode":
                for key in ("duplicate", "redeliver", "reorder", "bad_signature"):
                    if key in p:
                        setattr(self, key, bool(p[key]))
                return json_response({"ok": True})
        except WiseError as exc:
            return exc.response()
        except (KeyError, ValueError, TypeError) as exc:
            return json_response({"error": f"bad sandbox request: {exc}"}, 400)
        return super().control_action(request)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "api_token": self.api_token,
                "client_secret": self.client_secret,
                "signing_key": self.signing_key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ),
                "recipients": self.recipients,
                "quotes": self.quotes,
                "transfers": self.transfers,
                "next_id": self.next_id,
                "endpoints": self.endpoints,
            }

    def restore(self, snapshot: dict[str, Any]) -> None:
        with self.lock:
            self.api_token = snapshot["api_token"]
            self.client_secret = snapshot["client_secret"]
            key = serialization.load_pem_private_key(snapshot["signing_key"], password=None)
            assert isinstance(key, rsa.RSAPrivateKey)
            self.signing_key = key
            self.recipients = snapshot["recipients"]
            self.quotes = snapshot["quotes"]
            self.transfers = snapshot["transfers"]
            self.next_id = snapshot["next_id"]
            self.endpoints = snapshot["endpoints"]

    def state_summary(self) -> dict[str, Any]:
        with self.lock:
            return {
                **super().state_summary(),
                "recipients": sum(1 for r in self.recipients.values() if r["active"]),
                "quotes": len(self.quotes),
                "transfers": len(self.transfers),
                "api_requests": self.api_requests,
                "token_requests": self.token_requests,
                "violations": len(self.violations),
            }

    def connection_values(self, url: str) -> dict[str, Any]:
        return {
            "kind": "wise",
            "credentials": {"client_id": self.client_id, "client_secret": self.client_secret},
            "settings": {
                "environment": "sandbox",
                "base_url": url,
                "profile_id": str(PROFILE_ID),
                "source_currency": "EUR",
                "webhook_public_key": self.public_key_pem,
            },
        }
