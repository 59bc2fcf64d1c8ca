"""A stateful IFS Cloud: IAM (Keycloak) client-credentials tokens and OData v4 projections.

Follows ``../shared/contracts/README.md`` (IFS Cloud): entity sets under
``/main/ifsapplications/projection/v1/{Projection}.svc/{EntitySet}`` (and ``/int/…``), entities by
key ``Set(Key='value')``, ``$filter`` (``eq ne gt ge lt le`` joined by ``and``), ``$orderby``,
``$select``, ``$top``/``$skip`` (refused without ``$orderby``; at most 5,000 a page),
``@odata.nextLink`` when ``next_links`` is on, ``@odata.etag`` that changes on every write,
``PATCH`` that needs ``If-Match`` (``ODP_MISSING_PRECONDITION``) and answers 412 to a stale one
(``edit_after_read`` stands for a person changing a record just after it was read),
423 for a locked entity, OData error bodies, ``$metadata``, short tokens (``expires_in`` 180), a
rate limit answered with 429, a stale metadata cache (``stale_metadata``: 500
``MI_MODIFIED_ERROR``), and the shared faults.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from werkzeug.wrappers import Request, Response

from connections.sandbox.base import Simulator, json_response

API_PREFIXES = ("/main/ifsapplications/projection/v1/", "/int/ifsapplications/projection/v1/")
MAX_PAGE = 5000
TOKEN_SECONDS = 180
# The sets this sandbox serves, and the key fields of each.
SETS: dict[str, tuple[str, ...]] = {
    "CustomerHandling.svc/CustomerInfoSet": ("CustomerId",),
    "CustomerOrderHandling.svc/CustomerOrderSet": ("OrderNo",),
    "CustomerInvoiceHandling.svc/CustomerInvoiceSet": ("Company", "InvoiceId"),
    "VoucherHandling.svc/VoucherSet": ("Company", "AccountingYear", "VoucherType", "VoucherNo"),
}
_COMPARE = re.compile(r"^\s*(\w+)\s+(eq|ne|gt|ge|lt|le)\s+(.+?)\s*$")
_KEY = re.compile(r"^(?P<set>[^()]+)\((?P<key>.*)\)$")


def odata_error(status: int, code: str, message: str) -> Response:
    return json_response({"error": {"code": code, "message": message, "details": []}}, status)


_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?$")


def _literal(text: str) -> Any:
    text = text.strip()
    if _DATETIME.match(text):  # Edm.Date / Edm.DateTimeOffset literals are not quoted
        return text if len(text) == 10 or text.endswith("Z") else text + "Z"
    if text.startswith("'") and text.endswith("'") and len(text) >= 2:
        return text[1:-1].replace("''", "'")
    if text in ("true", "false"):
        return text == "true"
    if text == "null":
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"not a literal: {text}") from None


def _etag(entity: Mapping[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(entity, sort_keys=True, default=str).encode()).digest()
    return 'W/"' + base64.b64encode(digest[:12]).decode() + '"'


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
        rate_limit_per_minute: int | None = None,
    ) -> None:
        super().__init__(rate_limit_per_minute=rate_limit_per_minute)
        self.realm = realm
        self.client_id = client_id
        self.client_secret = client_secret or secrets.token_urlsafe(18)
        self.sets: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {s: {} for s in SETS}
        self.locked: set[tuple[str, tuple[Any, ...]]] = set()
        self.tokens: dict[str, float] = {}
        self.token_requests = 0
        self.api_requests = 0
        self.next_links = False  # answer with @odata.nextLink instead of leaving paging to $skip
        self.stale_metadata = 0  # the next N API calls answer 500 MI_MODIFIED_ERROR
        # A person editing a record just after it is read: (set, key) → changes, applied once
        # right after the next GET of that record (so the reader's ETag is stale).
        self.edit_after_read: dict[tuple[str, tuple[Any, ...]], dict[str, Any]] = {}

    # -- state ------------------------------------------------------------------------------

    def put(self, entity_set: str, **fields: Any) -> dict[str, Any]:
        """Add or replace an entity (a user's change in IFS): a new ETag."""
        with self.lock:
            key = tuple(fields[k] for k in SETS[entity_set])
            entity = {**self.sets[entity_set].get(key, {}), **fields}
            entity["@odata.etag"] = _etag({k: v for k, v in entity.items() if k[0] != "@"})
            self.sets[entity_set][key] = entity
            return entity

    def entity(self, entity_set: str, *key: Any) -> dict[str, Any] | None:
        return self.sets[entity_set].get(tuple(key))

    def lock_entity(self, entity_set: str, *key: Any, locked: bool = True) -> None:
        (self.locked.add if locked else self.locked.discard)((entity_set, tuple(key)))

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
        rest = unquote(path[len(prefix) :])
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
        projection, _, tail = rest.partition("/")
        if tail == "$metadata":
            known = {s.split("/")[0] for s in SETS}
            if projection not in known:
                return odata_error(404, "ODP_NOT_FOUND", f"Projection {projection} not found.")
            return Response(
                f'<edmx:Edmx Version="4.0"><!-- {projection} --></edmx:Edmx>',
                content_type="application/xml",
            )
        match = _KEY.match(tail)
        entity_set = f"{projection}/{match.group('set') if match else tail}"
        if entity_set not in SETS:
            return odata_error(404, "ODP_NOT_FOUND", f"Entity set {entity_set} not found.")
        if match is None:
            if request.method != "GET":
                return odata_error(405, "ODP_METHOD_NOT_ALLOWED", "Use GET on a collection.")
            return self._collection(request, entity_set)
        try:
            key = self._key(entity_set, match.group("key"))
        except ValueError as exc:
            return odata_error(400, "ODP_INVALID_KEY", str(exc))
        if request.method == "GET":
            with self.lock:
                found = self.sets[entity_set].get(key)
                edit = self.edit_after_read.pop((entity_set, key), None)
                if found is not None and edit is not None:
                    self.put(entity_set, **{**found, **edit})
            if found is None:
                return odata_error(404, "ODP_NOT_FOUND", "The record does not exist.")
            return json_response(found, headers={"ETag": found["@odata.etag"]})
        if request.method == "PATCH":
            return self._patch(request, entity_set, key)
        return odata_error(405, "ODP_METHOD_NOT_ALLOWED", f"{request.method} is not allowed.")

    def _key(self, entity_set: str, text: str) -> tuple[Any, ...]:
        names = SETS[entity_set]
        parts = dict(p.split("=", 1) for p in re.split(r",(?=\w+=)", text) if "=" in p)
        if len(names) == 1 and not parts:
            return (_literal(text),)
        if set(parts) != set(names):
            raise ValueError(f"The key of {entity_set} is {', '.join(names)}.")
        return tuple(_literal(parts[n]) for n in names)

    def _collection(self, request: Request, entity_set: str) -> Response:
        args = request.args
        top, skip = args.get("$top"), args.get("$skip")
        orderby = args.get("$orderby", "")
        if (top is not None or skip is not None) and not orderby:
            return odata_error(400, "ODP_ORDERBY_REQUIRED", "$top/$skip need $orderby.")
        try:
            rows = self._filter(list(self.sets[entity_set].values()), args.get("$filter", ""))
            top_n = min(int(top), MAX_PAGE) if top is not None else MAX_PAGE
            skip_n = int(skip or 0)
        except ValueError as exc:
            return odata_error(400, "ODP_INVALID_QUERY", str(exc))
        for part in reversed([p.strip() for p in orderby.split(",") if p.strip()]):
            field, _, direction = part.partition(" ")
            rows.sort(
                key=lambda r, f=field: (r.get(f) is None, r.get(f)), reverse=direction == "desc"
            )
        page = rows[skip_n : skip_n + top_n]
        select = [s.strip() for s in args.get("$select", "").split(",") if s.strip()]
        if select:
            keep = {*select, *SETS[entity_set], "@odata.etag"}
            page = [{k: v for k, v in r.items() if k in keep} for r in page]
        body: dict[str, Any] = {"@odata.context": f"$metadata#{entity_set}", "value": page}
        if self.next_links and skip_n + top_n < len(rows):
            query = {**args.to_dict(), "$skip": str(skip_n + top_n), "$top": str(top_n)}
            link = "&".join(f"{k}={v}" for k, v in query.items())
            body["@odata.nextLink"] = f"{request.base_url}?{link}"
        return json_response(body)

    @staticmethod
    def _filter(rows: list[dict[str, Any]], expression: str) -> list[dict[str, Any]]:
        if not expression.strip():
            return rows
        if re.search(r"\b(has|mod|or)\b", expression):
            raise ValueError("Only comparisons joined by 'and' are supported here.")
        tests = []
        for clause in re.split(r"\s+and\s+", expression):
            match = _COMPARE.match(clause)
            if match is None:
                raise ValueError(f"Cannot read the filter clause: {clause}")
            tests.append((match.group(1), match.group(2), _literal(match.group(3))))
        ops = {
            "eq": lambda a, b: a == b,
            "ne": lambda a, b: a != b,
            "gt": lambda a, b: a is not None and a > b,
            "ge": lambda a, b: a is not None and a >= b,
            "lt": lambda a, b: a is not None and a < b,
            "le": lambda a, b: a is not None and a <= b,
        }
        return [r for r in rows if all(ops[op](r.get(f), v) for f, op, v in tests)]

    def _patch(self, request: Request, entity_set: str, key: tuple[Any, ...]) -> Response:
        if_match = request.headers.get("If-Match")
        if not if_match:
            return odata_error(
                428, "ODP_MISSING_PRECONDITION", "An If-Match header with the ETag is required."
            )
        changes = request.get_json(silent=True)
        if not isinstance(changes, dict):
            return odata_error(400, "ODP_INVALID_BODY", "The body must be a JSON object.")
        with self.lock:
            found = self.sets[entity_set].get(key)
            if found is None:
                return odata_error(404, "ODP_NOT_FOUND", "The record does not exist.")
            if (entity_set, key) in self.locked:
                return odata_error(423, "ODP_LOCKED", "The record is locked by another user.")
            if if_match != found["@odata.etag"]:
                return odata_error(
                    412, "ODP_PRECONDITION_FAILED", "The record was changed by another user."
                )
            keys = set(SETS[entity_set])
            if keys & set(changes):
                return odata_error(400, "ODP_KEY_CHANGE", "Key fields cannot be changed.")
            updated = self.put(entity_set, **{**found, **changes})
        return json_response(updated, headers={"ETag": updated["@odata.etag"]})

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
                    "CustomerInvoiceHandling.svc/CustomerInvoiceSet",
                    Company="10",
                    InvoiceId=f"{5000 + n}",
                    InvoiceNo=f"CI-{5000 + n}",
                    Identity=number,
                    Currency="SEK",
                    DueDate="2027-01-31",
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
        with self.lock:
            self.sets = {s: snapshot["sets"].get(s, {}) for s in SETS}
            self.client_secret = snapshot.get("client_secret", self.client_secret)

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
