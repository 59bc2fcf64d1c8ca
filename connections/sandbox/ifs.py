"""A stateful IFS Cloud: IAM (Keycloak) client-credentials tokens and OData v4 projections,
read as strictly as a real OData server reads them.

Rules and their sources (``../shared/contracts/README.md``, IFS Cloud, and the OASIS OData v4.01
URL Conventions it cites):
- sets under ``/main/ifsapplications/projection/v1/{Projection}.svc/{EntitySet}`` (and ``/int/…``);
  ``$metadata`` served per projection (``ifs_schema.py``) and enforced: a ``$select``,
  ``$filter``, ``$orderby`` or ``$expand`` naming what it does not declare is a 400;
- query options are percent-decoded only: ``+`` is a literal plus, never a space (RFC 3986), so
  a form-encoded ``$filter`` does not parse;
- literals follow the property's EDM type: ``Edm.String`` quoted, numbers, dates and times bare
  (a time with its zone), enum members qualified (``IfsApp.X.State'Posted'``); keys too
  (``CustomerInvoiceSet(Company='10',InvoiceId=5001)``): a quoted number key is a 400;
- ``$filter`` comparisons (``eq ne gt ge lt le``) joined by ``and`` (no ``has``/``mod``);
  ``$top``/``$skip`` only with ``$orderby``; at most 5,000 a page; ``@odata.nextLink`` when
  ``next_links`` is on;
- a collection (an invoice's lines) is never nested in its parent: it is reached by its own
  entity set, or its navigation path ``Set(key)/InvoiceLines``; ``$expand`` is one-to-one only
  (the README), so expanding a collection is a 400 unless ``expand_collections`` is on — and
  ``hide_navigations`` serves a ``$metadata`` that declares no navigation at all;
- ``@odata.etag`` changes on every write; ``PATCH`` needs ``If-Match``
  (``ODP_MISSING_PRECONDITION``), answers 412 to a stale one and 423 for a locked entity
  (``edit_after_read`` stands for a person changing a record just after it was read); unknown or
  key properties in a PATCH body are a 400;
- OData error bodies with neutral texts, short tokens (``expires_in`` 180), 429 past the rate
  limit, a stale metadata cache (``stale_metadata``: 500 ``MI_MODIFIED_ERROR``), and the shared
  faults — ``lose_response`` on any write commits it and loses the answer.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote, unquote

from werkzeug.wrappers import Request, Response

from connections.sandbox.base import RateLimit, Simulator, json_response
from connections.sandbox.ifs_schema import (
    ADDRESS_FIELDS,
    ADDRESSES,
    CUSTOMERS,
    DATE,
    DECIMAL,
    INT,
    INVOICE_LINES,
    INVOICES,
    MOMENT,
    PROJECTIONS,
    STRING,
    EntityType,
    Projection,
    all_sets,
    entity_type,
)

API_PREFIXES = ("/main/ifsapplications/projection/v1/", "/int/ifsapplications/projection/v1/")
MAX_PAGE = 5000
TOKEN_SECONDS = 180
# The contract (shared/contracts/README.md, IFS Cloud): "Rate limit about 1000 requests/minute
# per tenant, 429 when exceeded".  No burst is published: the simulator allows a small one.
RATE_PER_MINUTE, BURST = 1000, 10
SETS: dict[str, tuple[str, ...]] = {s: entity_type(s)[1].keys for s in all_sets()}
OPTIONS = {"$filter", "$orderby", "$select", "$expand", "$top", "$skip", "$count", "$format"}
_COMPARE = re.compile(r"^(?P<field>[A-Za-z_]\w*) (?P<op>eq|ne|gt|ge|lt|le) (?P<value>.+)$")
_PATH = re.compile(r"^(?P<set>[A-Za-z_]\w*)(?:\((?P<key>.*)\))?(?:/(?P<nav>[A-Za-z_]\w*))?$")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MOMENT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,7})?)?(Z|[+-]\d{2}:\d{2})$")


class QueryError(ValueError):
    """A request a strict OData server refuses (400)."""


def odata_error(status: int, code: str, message: str) -> Response:
    return json_response({"error": {"code": code, "message": message, "details": []}}, status)


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def typed(projection: Projection, edm: str, value: Any) -> Any:
    """A stored value of ``edm`` (what ``put`` keeps): decimals exact, times as given."""
    if value is None:
        return None
    if edm == DECIMAL:
        return Decimal(str(value))
    if edm == INT:
        return int(value)
    if edm.startswith(projection.namespace + "."):
        members = projection.enums[edm.rsplit(".", 1)[1]]
        if str(value) not in members:
            raise ValueError(f"{value!r} is not one of {members}")
    return str(value)


def literal(projection: Projection, edm: str, text: str) -> Any:
    """A URL literal read as ``edm`` requires (``QueryError`` otherwise)."""
    text = text.strip()
    if text == "null":
        return None
    if edm == STRING:
        if len(text) >= 2 and text[0] == text[-1] == "'":
            return text[1:-1].replace("''", "'")
        raise QueryError("A value does not match the type of its property.")
    if edm in (DECIMAL, INT):
        if not _NUMBER.match(text) or (edm == INT and "." in text):
            raise QueryError("A value does not match the type of its property.")
        return Decimal(text) if edm == DECIMAL else int(text)
    if edm == DATE:
        if not _DAY.match(text):
            raise QueryError("A value does not match the type of its property.")
        return text
    if edm == MOMENT:
        if not _MOMENT.match(text):
            raise QueryError("A value does not match the type of its property.")
        return _moment(text)
    qualified, _, member = text.partition("'")
    if qualified == edm and member.endswith("'"):
        value = member[:-1]
        if value in projection.enums.get(edm.rsplit(".", 1)[1], ()):
            return value
    raise QueryError("A value does not match the type of its property.")


def _comparable(edm: str, value: Any) -> Any:
    return _moment(value) if edm == MOMENT and isinstance(value, str) else value


def _wire(entity: Mapping[str, Any]) -> dict[str, Any]:
    """An entity as OData JSON: decimals as JSON numbers (whole ones without a fraction)."""
    out: dict[str, Any] = {}
    for name, value in entity.items():
        if isinstance(value, Decimal):
            value = (
                int(value)
                if value == value.to_integral_value() and value.as_tuple().exponent >= 0
                else float(value)
            )
        out[name] = value
    return out


def _etag(entity: Mapping[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(entity, sort_keys=True, default=str).encode()).digest()
    return 'W/"' + base64.b64encode(digest[:12]).decode() + '"'


def quote_option(value: str) -> str:
    """A query option's value as OData wants it on the wire: spaces as %20, never ``+``."""
    return quote(value, safe=",():")


def query_options(request: Request) -> dict[str, str]:
    """The query string as OData reads it: percent-decoding only (``+`` stays a plus)."""
    options: dict[str, str] = {}
    raw = request.query_string.decode("latin-1")
    for part in raw.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        try:
            options[unquote(name, errors="strict")] = unquote(value, errors="strict")
        except UnicodeDecodeError:
            raise QueryError("The query is not valid.") from None
    return options


class IfsSimulator(Simulator):
    """One IFS Cloud tenant: its IAM realm and its projections."""

    name = "ifs"
    kind = "ifs_cloud"
    label = "IFS Cloud"
    default_port = 8103

    def __init__(
        self,
        *,
        realm: str = "sandbox",
        client_id: str = "mlc-sandbox",
        client_secret: str | None = None,
        rate_limit_per_minute: int | None = RATE_PER_MINUTE,
    ) -> None:
        super().__init__(rate_limit_per_minute=rate_limit_per_minute)
        if self.rate_limit.per_minute:  # a token bucket with a small burst, not a window
            self.rate_limit = RateLimit(per_minute=self.rate_limit.per_minute, burst=BURST)
        self.realm = realm
        self.client_id = client_id
        self.client_secret = client_secret or secrets.token_urlsafe(18)
        self.sets: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {s: {} for s in SETS}
        self.locked: set[tuple[str, tuple[Any, ...]]] = set()
        self.tokens: dict[str, float] = {}
        self.token_requests = 0
        self.api_requests = 0
        self.next_links = False  # answer with @odata.nextLink instead of leaving paging to $skip
        self.patches = 0  # writes applied (committed), whatever became of their answers
        self.expand_collections = False  # $expand of a collection (lines): refused, as IFS does
        self.hide_navigations = False  # a $metadata that declares no navigation property
        self.stale_metadata = 0  # the next N API calls answer 500 MI_MODIFIED_ERROR
        # A person editing a record just after it is read: (set, key) → changes, applied once
        # right after the next GET of that record (so the reader's ETag is stale).
        self.edit_after_read: dict[tuple[str, tuple[Any, ...]], dict[str, Any]] = {}

    # -- state ------------------------------------------------------------------------------

    def put(self, entity_set: str, **fields: Any) -> dict[str, Any]:
        """Add or replace an entity (a user's change in IFS): a new ETag.  Values are kept as
        their EDM type says; an invoice's ``Lines`` go to the lines' own entity set."""
        projection, etype = entity_type(entity_set)
        lines = fields.pop("Lines", None) if entity_set == INVOICES else None
        address = (
            {k: fields.pop(k) for k in ADDRESS_FIELDS if k in fields}
            if entity_set == CUSTOMERS
            else {}
        )
        unknown = set(fields) - set(etype.properties) - {"@odata.etag"}
        if unknown:
            raise ValueError(f"{entity_set} declares no {sorted(unknown)}")
        values = {
            k: typed(projection, etype.properties[k], v) for k, v in fields.items() if k[0] != "@"
        }
        with self.lock:
            key = tuple(values[k] for k in etype.keys)
            entity = {**self.sets[entity_set].get(key, {}), **values}
            entity["@odata.etag"] = _etag({k: v for k, v in entity.items() if k[0] != "@"})
            self.sets[entity_set][key] = entity
            if address:  # a customer's address is its first CustomerInfoAddresses row
                kept = self.sets[ADDRESSES].get((values["CustomerId"], "01")) or {}
                self.put(
                    ADDRESSES,
                    **{
                        **{k: v for k, v in kept.items() if k[0] != "@"},
                        "CustomerId": values["CustomerId"],
                        "AddressId": "01",
                        "Country": entity.get("Country"),
                        **address,
                    },
                )
            if lines is not None:
                for old in [k for k in self.sets[INVOICE_LINES] if k[:2] == key]:
                    del self.sets[INVOICE_LINES][old]
                for line in lines:
                    self.put(
                        INVOICE_LINES,
                        Company=values["Company"],
                        InvoiceId=values["InvoiceId"],
                        **line,
                    )
            return entity

    def entity(self, entity_set: str, *key: Any) -> dict[str, Any] | None:
        projection, etype = entity_type(entity_set)
        typed_key = tuple(
            typed(projection, etype.properties[k], v) for k, v in zip(etype.keys, key, strict=True)
        )
        return self.sets[entity_set].get(typed_key)

    def lines_of(self, company: str, invoice_id: Any) -> list[dict[str, Any]]:
        key = (str(company), Decimal(str(invoice_id)))
        return [line for k, line in sorted(self.sets[INVOICE_LINES].items()) if k[:2] == key]

    def lock_entity(self, entity_set: str, *key: Any, locked: bool = True) -> None:
        projection, etype = entity_type(entity_set)
        typed_key = tuple(
            typed(projection, etype.properties[k], v) for k, v in zip(etype.keys, key, strict=True)
        )
        (self.locked.add if locked else self.locked.discard)((entity_set, typed_key))

    # -- HTTP -------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        path = request.path
        if path == f"/auth/realms/{self.realm}/protocol/openid-connect/token":
            return self.apply_fault("token", lambda: self._token(request))
        prefix = next((p for p in API_PREFIXES if path.startswith(p)), None)
        if prefix is None:
            return odata_error(404, "ODP_NOT_FOUND", f"No resource at {path}.")
        token = (request.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        with self.lock:
            expiry = self.tokens.get(token)
        if expiry is None or expiry < time.time():
            return json_response({"error": "invalid_token"}, 401)
        wait = self.rate_limit.check(token)
        if wait is not None:
            response = odata_error(429, "ODP_TOO_MANY_REQUESTS", "Too many requests.")
            response.headers["Retry-After"] = str(max(1, round(wait)))
            return response
        with self.lock:
            self.api_requests += 1
        with self.lock:
            stale, self.stale_metadata = self.stale_metadata > 0, max(0, self.stale_metadata - 1)
        if stale:
            return odata_error(
                500, "MI_MODIFIED_ERROR", "The metadata cache is out of date; try again."
            )
        rest = path[len(prefix) :]  # Werkzeug has percent-decoded the path once already
        subject = f"{request.method} {rest}"
        return self.apply_fault(subject, lambda: self._api(request, rest))

    def _token(self, request: Request) -> Response:
        form = request.form
        with self.lock:
            self.token_requests += 1
        if form.get("grant_type") != "client_credentials":
            return json_response({"error": "unsupported_grant_type"}, 400)
        if (form.get("client_id"), form.get("client_secret")) != (
            self.client_id,
            self.client_secret,
        ):
            return json_response(
                {"error": "unauthorized_client", "error_description": "Invalid client secret"},
                401,
            )
        token = secrets.token_urlsafe(24)
        with self.lock:
            self.tokens[token] = time.time() + TOKEN_SECONDS
        return json_response(
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": TOKEN_SECONDS,
                "scope": form.get("scope", ""),
            }
        )

    def expire_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    def _api(self, request: Request, rest: str) -> Response:
        projection_name, _, tail = rest.partition("/")
        projection = PROJECTIONS.get(projection_name)
        if projection is None:
            return odata_error(404, "ODP_NOT_FOUND", "The resource does not exist.")
        if tail == "$metadata":
            return Response(
                projection.csdl(hide_navigations=self.hide_navigations),
                content_type="application/xml",
            )
        match = _PATH.match(tail)
        if match is None or match.group("set") not in projection.sets:
            return odata_error(404, "ODP_NOT_FOUND", "The resource does not exist.")
        entity_set = f"{projection_name}/{match.group('set')}"
        etype = projection.types[projection.sets[match.group("set")]]
        try:
            options = query_options(request)
            if match.group("key") is None:
                if request.method != "GET":
                    return odata_error(405, "ODP_METHOD_NOT_ALLOWED", "The method is not allowed.")
                return self._collection(request, projection, entity_set, options)
            key = self._key(projection, etype, match.group("key"))
            nav = match.group("nav")
            if nav is not None:
                return self._navigate(request, projection, entity_set, etype, key, nav, options)
            if request.method == "GET":
                return self._read(entity_set, key)
            if request.method == "PATCH":
                return self._patch(request, entity_set, etype, key)
        except QueryError as exc:
            return odata_error(400, "ODP_INVALID_QUERY", str(exc))
        return odata_error(405, "ODP_METHOD_NOT_ALLOWED", "The method is not allowed.")

    def _read(self, entity_set: str, key: tuple[Any, ...]) -> Response:
        with self.lock:
            found = self.sets[entity_set].get(key)
            edit = self.edit_after_read.pop((entity_set, key), None)
            if found is not None and edit is not None:
                self.put(entity_set, **{**found, **edit})
        if found is None:
            return odata_error(404, "ODP_NOT_FOUND", "The record does not exist.")
        return json_response(_wire(found), headers={"ETag": found["@odata.etag"]})

    def _key(self, projection: Projection, etype: EntityType, text: str) -> tuple[Any, ...]:
        """A key segment, each part typed as ``$metadata`` declares it."""
        parts: dict[str, str] = {}
        for piece in re.split(r",(?=[A-Za-z_]\w*=)", text):
            name, sep, value = piece.partition("=")
            if not sep:
                if len(etype.keys) == 1 and len(parts) == 0:
                    parts[etype.keys[0]] = piece
                    continue
                raise QueryError("The key is not valid.")
            parts[name.strip()] = value
        if set(parts) != set(etype.keys):
            raise QueryError("The key is not valid.")
        try:
            return tuple(literal(projection, etype.properties[k], parts[k]) for k in etype.keys)
        except QueryError:
            raise QueryError("The key is not valid.") from None

    def _navigate(
        self,
        request: Request,
        projection: Projection,
        entity_set: str,
        etype: EntityType,
        key: tuple[Any, ...],
        nav: str,
        options: dict[str, str],
    ) -> Response:
        if request.method != "GET":
            return odata_error(405, "ODP_METHOD_NOT_ALLOWED", "The method is not allowed.")
        if nav not in etype.navigations:
            return odata_error(404, "ODP_NOT_FOUND", "The resource does not exist.")
        with self.lock:
            if key not in self.sets[entity_set]:
                return odata_error(404, "ODP_NOT_FOUND", "The record does not exist.")
        related, rows = self.related(entity_set, key)
        return self._collection(request, projection, related, options, rows=rows)

    def related(self, entity_set: str, key: tuple[Any, ...]) -> tuple[str, list[dict[str, Any]]]:
        """The collection an entity's navigation reaches: a customer's addresses or an
        invoice's lines."""
        if entity_set == CUSTOMERS:
            with self.lock:
                rows = [a for k, a in sorted(self.sets[ADDRESSES].items()) if k[0] == key[0]]
            return ADDRESSES, rows
        return INVOICE_LINES, self.lines_of(key[0], key[1])

    def _collection(
        self,
        request: Request,
        projection: Projection,
        entity_set: str,
        options: dict[str, str],
        rows: list[dict[str, Any]] | None = None,
    ) -> Response:
        etype = entity_type(entity_set)[1]
        unknown = [o for o in options if o.startswith("$") and o not in OPTIONS]
        if unknown:
            raise QueryError("The query names an option that is not supported.")
        top, skip = options.get("$top"), options.get("$skip")
        orderby = options.get("$orderby", "")
        if (top is not None or skip is not None) and not orderby:
            return odata_error(400, "ODP_ORDERBY_REQUIRED", "$top and $skip need $orderby.")
        if rows is None:
            with self.lock:
                rows = list(self.sets[entity_set].values())
        rows = self._filter(projection, etype, rows, options.get("$filter", ""))
        try:
            top_n = min(int(top), MAX_PAGE) if top is not None else MAX_PAGE
            skip_n = int(skip or 0)
        except ValueError:
            raise QueryError("$top and $skip are whole numbers.") from None
        if top_n < 0 or skip_n < 0:
            raise QueryError("$top and $skip are whole numbers.")
        for part in reversed([p for p in orderby.split(",") if p.strip()]):
            field, _, direction = part.strip().partition(" ")
            if field not in etype.properties or direction not in ("", "asc", "desc"):
                raise QueryError("The query names a property that does not exist.")
            edm = etype.properties[field]
            rows.sort(
                key=lambda r, f=field, e=edm: (r.get(f) is None, _comparable(e, r.get(f)) or ""),
                reverse=direction == "desc",
            )
        page = rows[skip_n : skip_n + top_n]
        select = [s.strip() for s in options.get("$select", "").split(",") if s.strip()]
        if any(s not in etype.properties for s in select):
            raise QueryError("The query names a property that does not exist.")
        expand = [e.strip() for e in options.get("$expand", "").split(",") if e.strip()]
        navigations = {} if self.hide_navigations else etype.navigations
        for name in expand:
            if name not in navigations:
                raise QueryError("The query names a property that does not exist.")
            if navigations[name][1] and not self.expand_collections:
                raise QueryError("$expand is supported for single-valued navigations only.")
        out = []
        for row in page:
            shown = {k: v for k, v in row.items() if not select or k in select or k[0] == "@"}
            for name in expand:
                key = tuple(row[k] for k in etype.keys)
                shown[name] = [_wire(r) for r in self.related(entity_set, key)[1]]
            out.append(_wire(shown))
        body: dict[str, Any] = {"@odata.context": f"$metadata#{entity_set}", "value": out}
        if self.next_links and skip_n + top_n < len(rows):
            query = {**options, "$skip": str(skip_n + top_n), "$top": str(top_n)}
            link = "&".join(f"{k}={quote_option(v)}" for k, v in query.items())
            body["@odata.nextLink"] = f"{request.base_url}?{link}"
        return json_response(body)

    @staticmethod
    def _filter(
        projection: Projection, etype: EntityType, rows: list[dict[str, Any]], expression: str
    ) -> list[dict[str, Any]]:
        if not expression:
            return rows
        tests = []
        for clause in expression.split(" and "):
            match = _COMPARE.match(clause.strip())
            if match is None or match.group("field") not in etype.properties:
                raise QueryError("The filter cannot be read.")
            edm = etype.properties[match.group("field")]
            value = literal(projection, edm, match.group("value"))
            tests.append((match.group("field"), edm, match.group("op"), value))
        ops = {
            "eq": lambda a, b: a == b,
            "ne": lambda a, b: a != b,
            "gt": lambda a, b: a is not None and b is not None and a > b,
            "ge": lambda a, b: a is not None and b is not None and a >= b,
            "lt": lambda a, b: a is not None and b is not None and a < b,
            "le": lambda a, b: a is not None and b is not None and a <= b,
        }
        return [
            r
            for r in rows
            if all(ops[op](_comparable(edm, r.get(f)), v) for f, edm, op, v in tests)
        ]

    def _patch(
        self, request: Request, entity_set: str, etype: EntityType, key: tuple[Any, ...]
    ) -> Response:
        if_match = request.headers.get("If-Match")
        if not if_match:
            return odata_error(
                428, "ODP_MISSING_PRECONDITION", "An If-Match header with the ETag is required."
            )
        changes = request.get_json(silent=True)
        if not isinstance(changes, dict):
            return odata_error(400, "ODP_INVALID_BODY", "The body is not valid.")
        if any(k not in etype.properties or k in etype.keys for k in changes):
            return odata_error(400, "ODP_INVALID_BODY", "The body is not valid.")
        if any(
            etype.properties[k] == STRING and v is not None and not isinstance(v, str)
            for k, v in changes.items()
        ):
            return odata_error(400, "ODP_INVALID_BODY", "The body is not valid.")
        with self.lock:
            found = self.sets[entity_set].get(key)
            if found is None:
                return odata_error(404, "ODP_NOT_FOUND", "The record does not exist.")
            if (entity_set, key) in self.locked:
                return odata_error(423, "ODP_LOCKED", "The record is locked.")
            if if_match != found["@odata.etag"]:
                return odata_error(412, "ODP_PRECONDITION_FAILED", "The precondition failed.")
            updated = self.put(entity_set, **{**found, **changes})
            self.patches += 1
        return json_response(_wire(updated), headers={"ETag": updated["@odata.etag"]})

    def seed(self, **options: Any) -> None:
        """A small tenant: Swedish, Norwegian and Danish customers, each with a customer order
        and an invoice (no-op when there is data already)."""
        with self.lock:
            if any(self.sets.values()):
                return
            people = [
                ("10041", "Kvarn & Kaffe AB", "SE", "SE556677889901", "Uppsala"),
                ("10042", "Fjellbryggeriet AS", "NO", "NO987654321MVA", "Bergen"),
                ("10043", "Lindqvist Bygg AB", "SE", "SE556012345601", "Västerås"),
                ("10044", "Nordhavn Shipping ApS", "DK", "DK12345678", "Aarhus"),
            ]
            for n, (number, name, country, vat, city) in enumerate(people, start=1):
                changed = f"2026-11-{n:02d}T08:00:00Z"
                self.put(
                    "CustomerHandling.svc/CustomerInfoSet",
                    CustomerId=number,
                    Name=name,
                    Email=f"ekonomi@{number}.example",
                    Address1=f"Hamngatan {n}",
                    City=city,
                    ZipCode=f"{75300 + n}",
                    Country=country,
                    VatNo=vat,
                    ChangedDate=changed,
                )
                self.put(
                    "CustomerOrderHandling.svc/CustomerOrderSet",
                    OrderNo=f"C{100 + n}",
                    CustomerNo=number,
                    Contract="SE01",
                    Objstate="Cancelled" if n == 4 else "Released",
                    CurrencyCode="SEK",
                    CustomerPoNo=f"PO-{7700 + n}",
                    ChangedDate=f"2026-11-{n:02d}T08:30:00Z",
                )
                net, vat_amount = 1000 * n, 250 * n
                self.put(
                    INVOICES,
                    Company="10",
                    InvoiceId=5000 + n,
                    InvoiceNo=f"CI-{5000 + n}",
                    Identity=number,
                    Currency="SEK",
                    DueDate="2027-01-31",
                    Objstate="Posted" if n != 3 else "Preliminary",
                    NetAmount=f"{net}.00",
                    VatAmount=f"{vat_amount}.00",
                    GrossAmount=f"{net + vat_amount}.00",
                    ChangedDate=f"2026-11-{n:02d}T09:00:00Z",
                    NoteText="",
                    Lines=[
                        {
                            "LineNo": 1,
                            "Description": "Consulting",
                            "NetAmount": f"{net}.00",
                            "VatAmount": f"{vat_amount}.00",
                            "VatCode": "25",
                        }
                    ],
                )

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {"sets": self.sets, "client_secret": self.client_secret}

    def restore(self, snapshot: dict[str, Any]) -> None:
        """A saved tenant, each entity put again (an older state, with lines nested in its
        invoices and no invoice state, is brought up to date: its invoices are posted)."""
        with self.lock:
            self.sets = {s: {} for s in SETS}
            self.client_secret = snapshot.get("client_secret", self.client_secret)
            for entity_set, rows in (snapshot.get("sets") or {}).items():
                if entity_set not in SETS:
                    continue
                for row in rows.values():
                    fields = {k: v for k, v in row.items() if k[0] != "@"}
                    if entity_set == INVOICES:
                        fields.setdefault("Objstate", "Posted")
                    self.put(entity_set, **fields)

    def state_summary(self) -> dict[str, Any]:
        return {
            **super().state_summary(),
            "entities": {s: len(v) for s, v in self.sets.items()},
            "token_requests": self.token_requests,
            "api_requests": self.api_requests,
        }

    def connection_values(self, url: str) -> dict[str, Any]:
        return {
            "kind": "ifs_cloud",
            "credentials": {"client_id": self.client_id, "client_secret": self.client_secret},
            "settings": {"base_url": url, "realm": self.realm},
        }
