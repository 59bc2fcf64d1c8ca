"""OAuth token manager: proactive refresh, re-authentication on 401, single-flight refresh.

The current token of a connection lives in ``OAuthToken`` (encrypted).  A worker that finds it
fresh uses it without locking.  A worker that finds it stale takes the row lock
(``SELECT … FOR UPDATE``), looks again — another worker may have refreshed it meanwhile — and only
then calls the token endpoint, so however many workers notice at once, one request is made.

Each provider package supplies its primary ``Grant`` (the ION password grant from an ``.ionapi``
file, client credentials for IFS and Wise); the refresh-token grant is used first when a refresh
token is held, and a rotated refresh token is persisted.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from connections.models import Connection, OAuthToken
from connections.providers.errors import ApiError, AuthFailed, Rejected
from connections.providers.http import ApiClient, ClientConfig
from connections.redaction import Redactor

logger = logging.getLogger(__name__)

DEFAULT_LIFETIME = 3600


@dataclass(frozen=True)
class Grant:
    """How to obtain a token from scratch: the token URL, client authentication and form fields."""

    token_url: str
    client_id: str
    client_secret: str
    form: dict[str, str] = field(default_factory=dict)
    client_auth: str = "basic"  # "basic" (HTTP Basic) or "body" (client_id/secret in the form)

    def secrets(self) -> list[str]:
        return [self.client_secret, *(v for k, v in self.form.items() if k == "password")]


def client_credentials_grant(
    token_url: str,
    client_id: str,
    client_secret: str,
    *,
    scope: str | None = None,
    client_auth: str = "body",
) -> Grant:
    """The client-credentials grant (IFS IAM, Wise OAuth)."""
    form = {"grant_type": "client_credentials"}
    if scope:
        form["scope"] = scope
    return Grant(token_url, client_id, client_secret, form, client_auth)


class TokenManager:
    """Hands out a valid access token for one connection, refreshing it at most once at a time."""

    def __init__(
        self,
        connection: Connection,
        grant: Grant,
        *,
        http: ApiClient | None = None,
        skew_seconds: float | None = None,
        skew_ratio: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.connection = connection
        self.grant = grant
        self.skew_seconds = (
            settings.MLC["TOKEN_REFRESH_SKEW_SECONDS"] if skew_seconds is None else skew_seconds
        )
        self.skew_ratio = (
            settings.MLC["TOKEN_REFRESH_SKEW_RATIO"] if skew_ratio is None else skew_ratio
        )
        redactor = Redactor([*connection.secret_values(), *grant.secrets()])
        self.http = http or ApiClient(
            ClientConfig.from_connection(connection, base_url=grant.token_url),
            redactor=redactor,
            sleep=sleep,
        )

    # -- public -----------------------------------------------------------------------------

    def access_token(self) -> str:
        """A token valid for at least the refresh skew; refreshed here if need be."""
        token = OAuthToken.objects.filter(connection=self.connection).first()
        if token is not None and self.is_fresh(token):
            return token.access_token
        return self._refresh_single_flight()

    def invalidate(self, used: str | None) -> None:
        """Mark ``used`` expired after a 401 — unless another worker already replaced it."""
        with transaction.atomic():
            token = (
                OAuthToken.objects.select_for_update().filter(connection=self.connection).first()
            )
            if token is not None and (used is None or token.access_token == used):
                token.expires_at = timezone.now() - timedelta(seconds=1)
                token.save(update_fields=["expires_at", "updated_at"])

    def is_fresh(self, token: OAuthToken) -> bool:
        """Whether ``token`` is usable without refreshing first."""
        if not token.access_token or token.expires_at is None:
            return False
        lifetime = token.lifetime_seconds or DEFAULT_LIFETIME
        skew = min(float(self.skew_seconds), float(self.skew_ratio) * lifetime)
        return timezone.now() < token.expires_at - timedelta(seconds=skew)

    # -- internals --------------------------------------------------------------------------

    def _refresh_single_flight(self) -> str:
        try:
            with transaction.atomic():
                OAuthToken.objects.get_or_create(connection=self.connection)
                token = OAuthToken.objects.select_for_update().get(connection=self.connection)
                if self.is_fresh(token):  # another worker refreshed while we waited for the lock
                    return token.access_token
                payload = self._obtain(token)
                self._store(token, payload)
                return token.access_token
        except ApiError as exc:  # kept for support (the token page), outside the rolled-back txn
            OAuthToken.objects.update_or_create(
                connection=self.connection,
                defaults={"last_error": self.http.redact.text(exc.message)[:2000]},
            )
            raise

    @sensitive_variables("refresh_token")
    def _obtain(self, token: OAuthToken) -> dict[str, Any]:
        refresh_token = token.refresh_token
        if refresh_token:
            try:
                return self._post({"grant_type": "refresh_token", "refresh_token": refresh_token})
            except (AuthFailed, Rejected) as exc:
                logger.info(
                    "Refresh token refused for %s (%s); using the primary grant",
                    self.connection.slug,
                    exc.message,
                )
        return self._post(self.grant.form)

    @sensitive_variables("form", "body", "headers", "pair")
    def _post(self, form: dict[str, str]) -> dict[str, Any]:
        body = dict(form)
        headers = {"Accept": "application/json"}
        if self.grant.client_auth == "basic":
            pair = f"{self.grant.client_id}:{self.grant.client_secret}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        else:
            body.update(client_id=self.grant.client_id, client_secret=self.grant.client_secret)
        try:
            response = self.http.request(
                "POST",
                self.grant.token_url,
                data=body,
                headers=headers,
                idempotent=True,
                auth=False,
            )
        except (AuthFailed, Rejected) as exc:
            raise AuthFailed(
                f"The authorization server refused the credentials of “{self.connection.name}”: "
                f"{exc.message}",
                status=exc.status,
                detail=exc.detail,
            ) from None
        try:
            payload = response.json()
        except ValueError:
            raise ApiError("The token endpoint answered something that is not JSON.") from None
        if not isinstance(payload, dict) or not payload.get("access_token"):
            raise AuthFailed("The token endpoint answered without an access_token.")
        return payload

    def _store(self, token: OAuthToken, payload: dict[str, Any]) -> None:
        try:
            lifetime = int(payload.get("expires_in") or DEFAULT_LIFETIME)
        except (TypeError, ValueError):
            lifetime = DEFAULT_LIFETIME
        now = timezone.now()
        token.access_token = payload["access_token"]
        if payload.get("refresh_token"):  # rotated (or first) refresh token: keep the newest
            token.refresh_token = payload["refresh_token"]
        token.token_type = str(payload.get("token_type") or "Bearer")[:20]
        token.lifetime_seconds = lifetime
        token.obtained_at = now
        token.expires_at = now + timedelta(seconds=lifetime)
        token.refresh_count += 1
        token.last_error = ""
        token.save()
        logger.info("New access token for %s, valid %ss", self.connection.slug, lifetime)


class BearerAuth:
    """``Auth`` for ApiClient: a bearer token from a ``TokenManager``."""

    def __init__(self, manager: TokenManager) -> None:
        self.manager = manager

    def apply(self, headers: dict[str, str]) -> str | None:
        token = self.manager.access_token()
        headers["Authorization"] = f"Bearer {token}"
        return token

    def on_unauthorized(self, used: str | None) -> None:
        self.manager.invalidate(used)
