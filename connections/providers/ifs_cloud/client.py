"""IFS Cloud through its OData v4 projections, on the shared HTTP core.

- Auth: IFS IAM (Keycloak) client credentials at
  ``{base}/auth/realms/{realm}/protocol/openid-connect/token`` (``scope=openid
  microprofile-jwt``); tokens are short (minutes), so the token manager refreshes them ahead and
  re-authenticates once on a 401.
- Reads: ``$filter``/``$orderby``/``$select``, paged with ``$top``/``$skip`` (always with an
  ``$orderby``; at most 5,000 entities a page), following ``@odata.nextLink`` when the server
  sends one — on the same host only, never carrying the token elsewhere.
- Writes: ``PATCH`` with ``If-Match`` (the entity's ``@odata.etag``).  A stale ETag (412)
  becomes ``StaleEtag``; ``update`` reads the entity again and retries once.  A locked entity
  (423) becomes ``Locked``, a retryable failure: the record is tried again later.
- Errors: OData bodies ``{"error": {"code", "message", "details"}}`` become plain reasons; a
  500 with ``MI_MODIFIED_ERROR`` (a stale metadata cache) is retried once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import quote, urljoin, urlsplit

import requests

from connections.providers.base import CheckResult, HttpProvider
from connections.providers.errors import ApiError, NotFound, Rejected, Transient
from connections.providers.ifs_cloud.credentials import (
    DEFAULT_CHANGE_FIELDS,
    DEFAULT_ENTITIES,
    SPEC,
)
from connections.providers.oauth import Grant, client_credentials_grant

logger = logging.getLogger(__name__)

PAGE_SIZE = 5000  # the most entities IFS returns in one page
T = TypeVar("T")


class StaleEtag(Rejected):
    """The entity changed since it was read (412): read it again before writing."""


class Locked(Transient):
    """The entity is locked by another user or process (423): try again later."""

    retryable = True


def odata_literal(value: Any) -> str:
    """A value as an OData literal: strings quoted (``'`` doubled), numbers and booleans bare."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def key_segment(key: Mapping[str, Any]) -> str:
    """``(CustomerId='10041988')`` or ``(Company='10',InvoiceId=42)``, URL-quoted."""
    parts = ",".join(f"{name}={odata_literal(value)}" for name, value in key.items())
    return "(" + quote(parts, safe="=,'()") + ")"


class IfsCloud(HttpProvider):
    """One IFS Cloud tenant's projections."""

    kind = "ifs_cloud"
    label = "IFS Cloud"
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
        """``Projection.svc/EntitySet`` configured for ``need``."""
        overrides = (self.connection.settings or {}).get("entities") or {}
        return str(overrides.get(need) or DEFAULT_ENTITIES[need])

    def change_field(self, need: str) -> str:
        overrides = (self.connection.settings or {}).get("change_fields") or {}
        return str(overrides.get(need) or DEFAULT_CHANGE_FIELDS[need])

    def _path(self, need: str, key: Mapping[str, Any] | None = None) -> str:
        api = str(self.connection.setting("api_path")).strip("/")
        return f"{api}/{self.entity_set(need)}" + (key_segment(key) if key else "")

    # -- calls ------------------------------------------------------------------------------

    def _call(self, call: Callable[[], T]) -> T:
        """``call``, retried once after ``MI_MODIFIED_ERROR`` (IFS's stale metadata cache)."""
        try:
            return call()
        except Transient as exc:
            if exc.status == 500 and "MI_MODIFIED_ERROR" in str(exc.detail):
                logger.info("IFS metadata cache was stale (MI_MODIFIED_ERROR): retrying once")
                return call()
            raise

    def query(
        self,
        need: str,
        *,
        orderby: str,
        filter: str | None = None,
        select: Sequence[str] | None = None,
        page_size: int = PAGE_SIZE,
    ) -> Iterator[dict[str, Any]]:
        """Every entity of ``need`` matching ``filter``, in ``orderby`` order, page by page."""
        path = self._path(need)
        top = max(1, min(int(page_size), PAGE_SIZE))
        params: dict[str, Any] = {"$orderby": orderby, "$top": top, "$skip": 0}
        if filter:
            params["$filter"] = filter
        if select:
            params["$select"] = ",".join(select)
        base = self.http.url(path)
        next_link: str | None = None
        while True:
            body = self._call(
                lambda url=next_link: (
                    self.http.get(url) if url else self.http.get(path, params=params)
                ).json()
            )
            rows = body.get("value") if isinstance(body, dict) else None
            if not isinstance(rows, list):
                raise ApiError("IFS answered something that is not an OData collection.")
            yield from rows
            link = body.get("@odata.nextLink")
            if link:
                next_link = self._same_host(urljoin(base, str(link)))
                continue
            if len(rows) < top:
                return
            params["$skip"] += len(rows)
            next_link = None

    def _same_host(self, link: str) -> str:
        mine, theirs = urlsplit(self.http.url("")), urlsplit(link)
        if (mine.scheme, mine.netloc) != (theirs.scheme, theirs.netloc):
            raise ApiError(
                f"IFS sent a next-page link to another host ({theirs.netloc}); not followed."
            )
        return link

    def get(self, need: str, key: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
        """One entity by key, with its ETag."""
        response = self._call(lambda: self.http.get(self._path(need, key)))
        return self._entity(response)

    def patch(
        self, need: str, key: Mapping[str, Any], fields: Mapping[str, Any], *, etag: str
    ) -> tuple[dict[str, Any], str]:
        """Change ``fields`` of the entity if it is still as read (``etag``)."""
        try:
            response = self._call(
                lambda: self.http.request(
                    "PATCH",
                    self._path(need, key),
                    json=dict(fields),
                    headers={"If-Match": etag, "Prefer": "return=representation"},
                    idempotent=True,  # the same change again, guarded by the ETag
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
        change: Callable[[dict[str, Any]], Mapping[str, Any]],
    ) -> tuple[dict[str, Any], str]:
        """Read the entity, write ``change(entity)`` with its ETag; on a stale ETag read it
        again and retry once (``change`` sees the newer entity)."""
        entity, etag = self.get(need, key)
        try:
            return self.patch(need, key, change(entity), etag=etag)
        except StaleEtag:
            logger.info("IFS %s %s changed meanwhile: read again, retried once", need, dict(key))
            entity, etag = self.get(need, key)
            return self.patch(need, key, change(entity), etag=etag)

    @staticmethod
    def _entity(response: requests.Response) -> tuple[dict[str, Any], str]:
        body = response.json()
        if not isinstance(body, dict):
            raise ApiError("IFS answered something that is not an OData entity.")
        etag = str(body.get("@odata.etag") or response.headers.get("ETag") or "")
        return body, etag

    def probe(self) -> CheckResult:
        """Authenticate and read each configured projection's ``$metadata``."""
        api = str(self.connection.setting("api_path")).strip("/")
        projections = sorted({self.entity_set(n).split("/")[0] for n in DEFAULT_ENTITIES})
        problems = []
        for projection in projections:
            try:
                self._call(
                    lambda projection=projection: self.http.get(
                        f"{api}/{projection}/$metadata", headers={"Accept": "application/xml"}
                    )
                )
            except NotFound:
                problems.append(f"{projection} is not available to this client")
        host = urlsplit(str(self.connection.setting("base_url"))).netloc
        if problems:
            return CheckResult(
                False, f"Connected to {host}, but projections are missing.", problems
            )
        return CheckResult(True, f"Connected to {host}: {len(projections)} projections available.")
