"""IFS Cloud through its OData v4 projections, on the shared HTTP core.

- Auth: IFS IAM (Keycloak) client credentials at
  ``{base}/auth/realms/{realm}/protocol/openid-connect/token`` (``scope=openid
  microprofile-jwt``); tokens are short (minutes), so the token manager refreshes them ahead and
  re-authenticates once on a 401.
- ``$metadata``: read once per projection and connection (kept in this process; read again
  after ``MI_MODIFIED_ERROR``, IFS's stale metadata cache).  It types every key and filter
  literal, and every field named in ``$select``/``$filter``/``$orderby``/``$expand`` is checked
  against it before the call: a name it does not declare is refused here, in plain words.
- Query options are percent-encoded as OData requires (a space is ``%20``, never ``+``, which
  OData reads as a plus).  Reads page with ``$top``/``$skip`` (always with ``$orderby``; at most
  5,000 entities a page), following ``@odata.nextLink`` on the same host only.
- An invoice's lines come through the collection navigation ``$metadata`` declares — with
  ``$expand`` where the server allows it, else by the navigation path ``Set(key)/Nav`` — or
  from a lines entity set named on the connection; never a silent "no lines".
- Writes: ``PATCH`` with ``If-Match`` (the entity's ``@odata.etag``), never re-sent blindly:
  after a lost answer or a stale ETag (412) the entity is read again and written only if the
  change is still missing.  A locked entity (423) becomes ``Locked``, a retryable failure.
- Errors: OData bodies ``{"error": {"code", "message", "details"}}`` become plain reasons.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import quote, urljoin, urlsplit

import requests

from connections.providers.base import CheckResult, HttpProvider
from connections.providers.errors import (
    ApiError,
    AuthFailed,
    NotFound,
    OutcomeUnknown,
    RateLimited,
    Rejected,
    Transient,
)
from connections.providers.ifs_cloud import metadata
from connections.providers.ifs_cloud.credentials import (
    DEFAULT_CHANGE_FIELDS,
    DEFAULT_ENTITIES,
    SPEC,
)
from connections.providers.ifs_cloud.metadata import EntitySet, MetadataError
from connections.providers.oauth import Grant, client_credentials_grant

logger = logging.getLogger(__name__)

PAGE_SIZE = 5000  # the most entities IFS returns in one page
WRITE_ATTEMPTS = 4  # reads and writes of one change, when others keep changing the record
OPERATORS = frozenset({"eq", "ne", "gt", "ge", "lt", "le"})
T = TypeVar("T")

# $metadata per (connection, address, projection), for this process; and which connections'
# servers refused $expand of a collection (read by the navigation path instead).
_METADATA: dict[tuple[Any, ...], dict[str, EntitySet]] = {}
_NO_COLLECTION_EXPAND: set[tuple[Any, ...]] = set()
_CACHE_LOCK = threading.Lock()


class StaleEtag(Rejected):
    """The entity changed since it was read (412): read it again before writing."""


class Locked(Transient):
    """The entity is locked by another user or process (423): try again later."""

    retryable = True


def odata_literal(value: Any) -> str:
    """A value as an untyped OData literal (strings quoted): for a key whose type is known
    only as what Python holds; reads and writes use ``$metadata``'s types instead."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def key_segment(key: Mapping[str, Any], info: EntitySet | None = None) -> str:
    """``(CustomerId='10041988')`` or ``(Company='10',InvoiceId=42)``: each part typed as
    ``$metadata`` declares it (``info``), URL-quoted as OData wants."""
    parts = ",".join(
        f"{name}={info.literal(name, value) if info else odata_literal(value)}"
        for name, value in key.items()
    )
    return "(" + quote(parts, safe="=,()") + ")"


def encode_options(options: Sequence[tuple[str, Any]]) -> str:
    """Query options as OData reads them: each value percent-encoded (a space is %20, a quote
    %27, a plus %2B), the ``$`` names as they are."""
    return "&".join(f"{name}={quote(str(value), safe=',():')}" for name, value in options)


def _exact(text: str) -> str:
    """A JSON number with a fraction, kept as its exact text (an amount is never a float)."""
    return text


class IfsCloud(HttpProvider):
    """One IFS Cloud tenant's projections."""

    kind = "ifs_cloud"
    label = "IFS Cloud"
    keeps_books = True
    spec = SPEC

    def grant(self) -> Grant:
        base = str(self.connection.setting("base_url")).rstrip("/")
        realm = self.connection.setting("realm")
        return client_credentials_grant(
            f"{base}/auth/realms/{realm}/protocol/openid-connect/token",
            self.connection.credentials["client_id"],
            self.connection.credentials["client_secret"],
            scope="openid microprofile-jwt",
            client_auth="body",
        )

    def entity_set(self, need: str) -> str:
        """``Projection.svc/EntitySet`` configured for ``need`` ("" when it has none)."""
        overrides = (self.connection.settings or {}).get("entities") or {}
        return str(overrides.get(need) or DEFAULT_ENTITIES.get(need) or "")

    def change_field(self, need: str) -> str:
        overrides = (self.connection.settings or {}).get("change_fields") or {}
        return str(overrides.get(need) or DEFAULT_CHANGE_FIELDS[need])

    def payable_states(self) -> list[str]:
        """The invoice states a customer can pay (the connection's setting)."""
        value = str(self.connection.setting("payable_states") or "")
        return [s.strip() for s in value.split(",") if s.strip()]

    def _api(self) -> str:
        return str(self.connection.setting("api_path")).strip("/")

    # -- $metadata --------------------------------------------------------------------------

    def _cache_key(self, projection: str) -> tuple[Any, ...]:
        return (
            self.connection.pk,
            str(self.connection.setting("base_url")),
            self._api(),
            projection,
        )

    def projection(self, name: str) -> dict[str, EntitySet]:
        """The entity sets projection ``name`` declares (its ``$metadata``, read once)."""
        key = self._cache_key(name)
        with _CACHE_LOCK:
            known = _METADATA.get(key)
        if known is not None:
            return known
        response = self._call(
            lambda: self.http.get(
                f"{self._api()}/{name}/$metadata", headers={"Accept": "application/xml"}
            )
        )
        try:
            sets = metadata.parse(response.content)
        except MetadataError as exc:
            raise ApiError(str(exc)) from None
        with _CACHE_LOCK:
            _METADATA[key] = sets
        return sets

    def metadata(self, need: str) -> EntitySet:
        """What ``$metadata`` declares of the entity set configured for ``need``."""
        configured = self.entity_set(need)
        projection, _, set_name = configured.partition("/")
        sets = self.projection(projection)
        if set_name not in sets:
            raise ApiError(
                f"IFS's {projection} has no entity set {set_name} (for {need}); it has: "
                f"{', '.join(sorted(sets)[:30])}. Check “Entity set overrides” on the connection."
            )
        return sets[set_name]

    def _forget_metadata(self) -> None:
        with _CACHE_LOCK:
            for key in [k for k in _METADATA if k[0] == self.connection.pk]:
                del _METADATA[key]

    def _path(self, need: str, key: Mapping[str, Any] | None = None) -> str:
        info = self.metadata(need) if key else None
        try:
            segment = key_segment(key, info) if key else ""
        except MetadataError as exc:
            raise Rejected(f"Not a key IFS accepts for {need}: {exc}") from None
        return f"{self._api()}/{self.entity_set(need)}{segment}"

    # -- calls ------------------------------------------------------------------------------

    def _call(self, call: Callable[[], T]) -> T:
        """``call``, retried once after ``MI_MODIFIED_ERROR`` (IFS's stale metadata cache,
        after which this process's copy of ``$metadata`` is read again too)."""
        try:
            return call()
        except Transient as exc:
            if exc.status == 500 and "MI_MODIFIED_ERROR" in str(exc.detail):
                logger.info("IFS metadata cache was stale (MI_MODIFIED_ERROR): retrying once")
                self._forget_metadata()
                return call()
            raise

    @staticmethod
    def _json(response: requests.Response) -> Any:
        """The body as JSON, numbers with a fraction kept exact (as their text)."""
        try:
            return response.json(parse_float=_exact)
        except ValueError:
            raise ApiError("IFS answered something that is not JSON.") from None

    def query(
        self,
        need: str,
        *,
        orderby: Sequence[str],
        where: Sequence[tuple[str, str, Any]] = (),
        select: Sequence[str] | None = None,
        expand: Sequence[str] | None = None,
        page_size: int = PAGE_SIZE,
    ) -> Iterator[dict[str, Any]]:
        """Every entity of ``need`` matching ``where`` (``(field, operator, value)``, joined
        by ``and``, literals typed by ``$metadata``), in ``orderby`` order, page by page."""
        info = self.metadata(need)
        fields = [f.split(" ")[0] for f in orderby] + [f for f, _, _ in where] + list(select or ())
        try:
            info.require(fields, what="what ml-connector reads")
            for name in expand or ():
                if name not in info.navigations:
                    raise MetadataError(f"IFS's {info.name} declares no navigation {name}.")
            clauses = []
            for name, op, value in where:
                if op not in OPERATORS:
                    raise MetadataError(f"“{op}” is not an OData comparison.")
                clauses.append(f"{name} {op} {info.literal(name, value)}")
        except MetadataError as exc:
            raise ApiError(str(exc)) from None
        top = max(1, min(int(page_size), PAGE_SIZE))
        options: list[tuple[str, Any]] = [("$orderby", ",".join(orderby))]
        if clauses:
            options.append(("$filter", " and ".join(clauses)))
        if select:
            options.append(("$select", ",".join(select)))
        if expand:
            options.append(("$expand", ",".join(expand)))
        yield from self._pages(f"{self._api()}/{self.entity_set(need)}", options, top)

    def _pages(
        self, path: str, options: list[tuple[str, Any]], top: int | None
    ) -> Iterator[dict[str, Any]]:
        """Every row of a collection: paged by ``$top``/``$skip`` (``top``), or — for a
        navigation path, which has no order of ours — as the server pages it (nextLink)."""
        base = self.http.url(path)
        skip = 0
        next_link: str | None = None
        while True:
            paging = [("$top", top), ("$skip", skip)] if top else []
            query = encode_options([*options, *paging])
            url = next_link or (f"{path}?{query}" if query else path)
            body = self._call(lambda url=url: self._json(self.http.get(url)))
            rows = body.get("value") if isinstance(body, dict) else None
            if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
                raise ApiError("IFS answered something that is not an OData collection.")
            yield from rows
            link = body.get("@odata.nextLink")
            if link:
                next_link = self._same_host(urljoin(base, str(link)))
                continue
            if not top or len(rows) < top:
                return
            skip += len(rows)
            next_link = None

    def _same_host(self, link: str) -> str:
        mine, theirs = urlsplit(self.http.url("")), urlsplit(link)
        if (mine.scheme, mine.netloc) != (theirs.scheme, theirs.netloc):
            raise ApiError(
                f"IFS sent a next-page link to another host ({theirs.netloc}); not followed."
            )
        return link

    # -- invoices and their lines -----------------------------------------------------------

    def lines_source(self) -> tuple[str, str]:
        """Where an invoice's lines are read: ``("set", need)`` for a lines entity set named
        on the connection, ``("navigation", name)`` for the collection navigation of the
        invoice that ``$metadata`` declares; ``ApiError`` in plain words when neither."""
        if self.entity_set("invoice_lines"):
            return "set", "invoice_lines"
        info = self.metadata("invoices")
        wanted = str((self.connection.settings or {}).get("invoice_lines_navigation") or "")
        many = info.collection_navigations()
        if wanted:
            if wanted not in many:
                raise ApiError(
                    f"IFS's {info.name} declares no collection navigation {wanted}; it has: "
                    f"{', '.join(many) or 'none'}."
                )
            return "navigation", wanted
        if len(many) == 1:
            return "navigation", many[0]
        raise ApiError(
            f"ml-connector cannot tell where the lines of an IFS invoice are: {info.name} "
            + (
                f"has several collections ({', '.join(many)}): name the lines one"
                if many
                else "declares no lines collection: name the lines entity set"
            )
            + " on the connection (“invoice_lines = Projection.svc/EntitySet” under Entity set "
            "overrides, or Invoice lines navigation)."
        )

    def invoices(
        self, *, where: Sequence[tuple[str, str, Any]], orderby: Sequence[str], page_size: int
    ) -> Iterator[dict[str, Any]]:
        """Invoices matching ``where``, each with its lines under ``"Lines"``."""
        kind, source = self.lines_source()
        info = self.metadata("invoices")
        key = self._cache_key(info.name)
        expand = kind == "navigation" and key not in _NO_COLLECTION_EXPAND
        if expand:
            rows = self.query(
                "invoices", orderby=orderby, where=where, expand=[source], page_size=page_size
            )
            first = True
            try:
                for row in rows:
                    first = False
                    lines = row.pop(source, None)
                    if not isinstance(lines, list):
                        raise ApiError(
                            f"IFS answered invoice {row.get('InvoiceId')} without its {source}, "
                            "though they were asked for."
                        )
                    yield {**row, "Lines": lines}
                return
            except Rejected as exc:
                if not first or exc.status != 400:
                    raise
                logger.info("IFS refused $expand=%s: lines read one invoice at a time", source)
                with _CACHE_LOCK:
                    _NO_COLLECTION_EXPAND.add(key)
        for row in self.query("invoices", orderby=orderby, where=where, page_size=page_size):
            yield {**row, "Lines": self.invoice_lines(row, kind=kind, source=source)}

    def invoice_lines(self, invoice: Mapping[str, Any], *, kind: str, source: str) -> list[dict]:
        """One invoice's lines, by its navigation path or from the lines entity set."""
        info = self.metadata("invoices")
        key = {name: invoice.get(name) for name in info.keys}
        if kind == "navigation":
            return self.related("invoices", key, source)
        lines = self.metadata(source)
        if not all(name in lines.properties for name in info.keys):
            raise ApiError(
                f"IFS's {lines.name} does not carry the invoice's key "
                f"({', '.join(info.keys)}), so its lines cannot be found there."
            )
        return list(
            self.query(
                source,
                orderby=list(lines.keys),
                where=[(name, "eq", value) for name, value in key.items()],
            )
        )

    def related(self, need: str, key: Mapping[str, Any], navigation: str) -> list[dict[str, Any]]:
        """The collection an entity's navigation reaches, by its path ``Set(key)/Nav``."""
        return list(self._pages(self._path(need, key) + f"/{navigation}", [], None))

    def with_address(
        self, customer: dict[str, Any], fields: Sequence[str], navigation: str
    ) -> dict[str, Any]:
        """``customer`` with the address ``fields`` its header lacks taken from its first
        address (``navigation``, ``CustomerInfoAddresses``), where ``$metadata`` puts addresses
        there rather than on the header; as it is where the header declares them."""
        info = self.metadata("customers")
        missing = [f for f in fields if f not in info.properties]
        if not missing or navigation not in info.collection_navigations():
            return customer
        key = {name: customer.get(name) for name in info.keys}
        addresses = sorted(
            self.related("customers", key, navigation), key=lambda a: str(a.get("AddressId"))
        )
        first = addresses[0] if addresses else {}
        return {**customer, **{f: first.get(f) for f in missing if f in first}}

    # -- one entity -------------------------------------------------------------------------

    def get(self, need: str, key: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
        """One entity by key, with its ETag."""
        path = self._path(need, key)
        response = self._call(lambda: self.http.get(path))
        return self._entity(response)

    def patch(
        self, need: str, key: Mapping[str, Any], fields: Mapping[str, Any], *, etag: str
    ) -> tuple[dict[str, Any], str]:
        """Change ``fields`` of the entity if it is still as read (``etag``).  Sent once: a
        lost answer is ``OutcomeUnknown`` for ``update`` to settle by reading."""
        info = self.metadata(need)
        try:
            info.require(list(fields), what="a change to write")
        except MetadataError as exc:
            raise ApiError(str(exc)) from None
        path = self._path(need, key)
        try:
            response = self._call(
                lambda: self.http.request(
                    "PATCH",
                    path,
                    json=dict(fields),
                    headers={"If-Match": etag, "Prefer": "return=representation"},
                    idempotent=False,  # a lost answer is settled by reading, never re-sent
                )
            )
        except Rejected as exc:
            if exc.status == 412:
                raise StaleEtag(
                    "The IFS record changed since it was read.", status=412, detail=exc.detail
                ) from None
            if exc.status == 423:
                raise Locked(
                    "The IFS record is locked by another user; it is tried again later.",
                    status=423,
                    detail=exc.detail,
                    remote_message=exc.remote_message or "the record is locked by another user",
                ) from None
            raise
        if response.status_code == 204 or not response.content:
            return dict(fields), response.headers.get("ETag", "")
        return self._entity(response)

    def update(
        self,
        need: str,
        key: Mapping[str, Any],
        change: Callable[[dict[str, Any]], Mapping[str, Any] | None],
    ) -> tuple[dict[str, Any], bool]:
        """Read the entity and write ``change(entity)`` with its ETag; ``change`` answers None
        when the entity needs nothing (the change is there already).  After a stale ETag or a
        lost answer the entity is read again and ``change`` asked again, so a write whose
        answer was lost is never made twice.  Returns (the entity, whether it was written)."""
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            entity, etag = self.get(need, key)
            fields = change(entity)
            if fields is None:
                return entity, False
            try:
                written, _ = self.patch(need, key, fields, etag=etag)
                return written, True
            except Locked:
                raise
            except (StaleEtag, OutcomeUnknown) as exc:
                if attempt == WRITE_ATTEMPTS:
                    raise
                logger.info("IFS %s %s: %s; read again", need, dict(key), type(exc).__name__)
        raise AssertionError("unreachable")

    def _entity(self, response: requests.Response) -> tuple[dict[str, Any], str]:
        body = self._json(response)
        if not isinstance(body, dict):
            raise ApiError("IFS answered something that is not an OData entity.")
        etag = str(body.get("@odata.etag") or response.headers.get("ETag") or "")
        return body, etag

    def probe(self) -> CheckResult:
        """Authenticate; read each configured projection's ``$metadata``; check that every
        configured entity set and change field is declared and invoices' lines are reachable."""
        host = urlsplit(str(self.connection.setting("base_url"))).netloc
        self._forget_metadata()  # a test reads the tenant as it is now
        problems = []
        needs = [n for n in DEFAULT_ENTITIES if self.entity_set(n)]
        for need in needs:
            try:
                info = self.metadata(need)
                if need in DEFAULT_CHANGE_FIELDS:
                    info.require([self.change_field(need)], what=f"the change field of {need}")
            except NotFound:
                problems.append(f"{self.entity_set(need).split('/')[0]} is not available")
            except (AuthFailed, Transient, RateLimited):
                raise  # the connection itself: worded by check()
            except (ApiError, MetadataError) as exc:
                problems.append(getattr(exc, "message", str(exc)))
        if not problems:
            try:
                kind, source = self.lines_source()
            except ApiError as exc:
                problems.append(exc.message)
        if problems:
            return CheckResult(
                False,
                f"Connected to {host}, but not everything ml-connector reads is there.",
                sorted(set(problems)),
            )
        how = "their own entity set" if kind == "set" else f"the navigation {source}"
        return CheckResult(
            True,
            f"Connected to {host}: {len(needs)} entity sets found; invoice lines through {how}.",
        )
