"""The token manager against a real token endpoint on loopback."""

from __future__ import annotations

import base64
import json
import threading
import time
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs

import pytest
from django.utils import timezone
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from connections.models import Connection, OAuthToken
from connections.providers.errors import AuthFailed
from connections.providers.http import ApiClient, ClientConfig
from connections.providers.oauth import BearerAuth, TokenManager, client_credentials_grant
from connections.providers.registry import client_for
from tests.conftest import IONAPI


def token_manager_for(connection: Connection) -> TokenManager:
    """The token manager a connection's provider wires up (its own grant)."""
    grant = client_for(connection).grant()
    assert grant is not None
    return TokenManager(connection, grant)


class TokenEndpoint:
    """An ION-like token endpoint: issues numbered tokens, rotates refresh tokens."""

    def __init__(self, lifetime: int = 7200, refresh: bool = True, delay: float = 0.0) -> None:
        self.requests: list[dict[str, Any]] = []
        self.lifetime, self.refresh, self.delay = lifetime, refresh, delay
        self.refuse_refresh = False
        self.lock = threading.Lock()

    def __call__(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs(request.get_data(as_text=True)).items()}
        with self.lock:
            self.requests.append({"form": form, "auth": request.headers.get("Authorization")})
            n = len(self.requests)
        if self.delay:
            time.sleep(self.delay)
        if form.get("grant_type") == "refresh_token" and self.refuse_refresh:
            return Response(
                json.dumps({"error": "invalid_grant"}), 400, content_type="application/json"
            )
        if form.get("grant_type") == "password" and form.get("password") != IONAPI["sask"]:
            return Response(
                json.dumps({"error": "invalid_grant", "error_description": "Bad service account"}),
                400,
                content_type="application/json",
            )
        body: dict[str, Any] = {
            "access_token": f"at-{n}",
            "token_type": "Bearer",
            "expires_in": self.lifetime,
        }
        if self.refresh:
            body["refresh_token"] = f"rt-{n}"
        return Response(json.dumps(body), 200, content_type="application/json")


@pytest.fixture
def m3(db: Any, httpserver: HTTPServer) -> Connection:
    conn = Connection(
        name="M3",
        slug="m3",
        kind="infor_m3",
        credentials={
            **IONAPI,
            "pu": httpserver.url_for("/ACME_TST/as/"),
            "iu": httpserver.url_for("/"),
        },
    )
    conn.full_clean()
    conn.save()
    return conn


def serve(httpserver: HTTPServer, endpoint: TokenEndpoint) -> TokenEndpoint:
    httpserver.expect_request("/ACME_TST/as/token.oauth2", method="POST").respond_with_handler(
        endpoint
    )
    return endpoint


def test_password_grant_from_the_ionapi_file(m3: Connection, httpserver: HTTPServer) -> None:
    endpoint = serve(httpserver, TokenEndpoint())
    manager = token_manager_for(m3)
    assert manager.access_token() == "at-1"
    assert manager.access_token() == "at-1"  # fresh: no second request
    (req,) = endpoint.requests
    assert req["form"] == {
        "grant_type": "password",
        "username": IONAPI["saak"],
        "password": IONAPI["sask"],
    }
    assert base64.b64decode(req["auth"].split()[1]).decode() == f"{IONAPI['ci']}:{IONAPI['cs']}"
    token = OAuthToken.objects.get(connection=m3)
    assert (token.refresh_token, token.lifetime_seconds) == ("rt-1", 7200)


def test_refreshes_before_expiry_with_the_refresh_token_and_keeps_the_rotated_one(
    m3: Connection,
    httpserver: HTTPServer,
) -> None:
    endpoint = serve(httpserver, TokenEndpoint())
    manager = token_manager_for(m3)
    manager.access_token()
    # 4 minutes left of a 2-hour token: inside the 5-minute skew, so refresh now.
    OAuthToken.objects.filter(connection=m3).update(
        expires_at=timezone.now() + timedelta(minutes=4)
    )
    assert manager.access_token() == "at-2"
    assert endpoint.requests[1]["form"] == {"grant_type": "refresh_token", "refresh_token": "rt-1"}
    assert OAuthToken.objects.get(connection=m3).refresh_token == "rt-2"


def test_a_short_lived_token_uses_ten_percent_of_its_lifetime_as_skew(
    m3: Connection,
    httpserver: HTTPServer,
) -> None:
    endpoint = serve(httpserver, TokenEndpoint(lifetime=180))
    manager = token_manager_for(m3)
    manager.access_token()
    OAuthToken.objects.filter(connection=m3).update(
        expires_at=timezone.now() + timedelta(seconds=60)
    )
    manager.access_token()
    assert len(endpoint.requests) == 1  # 60 s left > 18 s skew: still fresh
    OAuthToken.objects.filter(connection=m3).update(
        expires_at=timezone.now() + timedelta(seconds=10)
    )
    manager.access_token()
    assert len(endpoint.requests) == 2


def test_a_refused_refresh_token_falls_back_to_the_primary_grant(
    m3: Connection,
    httpserver: HTTPServer,
) -> None:
    endpoint = serve(httpserver, TokenEndpoint())
    manager = token_manager_for(m3)
    manager.access_token()
    endpoint.refuse_refresh = True
    manager.invalidate(None)
    assert manager.access_token() == "at-3"
    assert [r["form"]["grant_type"] for r in endpoint.requests] == [
        "password",
        "refresh_token",
        "password",
    ]


def test_401_from_the_api_gets_a_new_token_once(m3: Connection, httpserver: HTTPServer) -> None:
    serve(httpserver, TokenEndpoint(refresh=False))
    calls: list[str] = []

    def api(request: Request) -> Response:
        calls.append(request.headers["Authorization"])
        # at-1 was revoked on the server side before it expired.
        return Response("{}", 401 if request.headers["Authorization"] == "Bearer at-1" else 200)

    httpserver.expect_request("/M3/x").respond_with_handler(api)
    client = ApiClient(
        ClientConfig(base_url=httpserver.url_for("/")), auth=BearerAuth(token_manager_for(m3))
    )
    client.get("M3/x")
    assert calls == ["Bearer at-1", "Bearer at-2"]


def test_refused_credentials_raise_a_clear_error_without_secrets(
    m3: Connection,
    httpserver: HTTPServer,
) -> None:
    serve(httpserver, TokenEndpoint())
    m3.credentials = {**m3.credentials, "sask": "wrong-secret-value"}
    with pytest.raises(AuthFailed) as info:
        token_manager_for(m3).access_token()
    assert "refused the credentials of “M3”" in info.value.message
    assert "Bad service account" in info.value.message
    assert "wrong-secret-value" not in info.value.message
    assert IONAPI["cs"] not in info.value.message
    kept = OAuthToken.objects.get(connection=m3).last_error  # for support, on the token page
    assert "Bad service account" in kept and "wrong-secret-value" not in kept


@pytest.mark.django_db(transaction=True)
def test_only_one_worker_refreshes_at_a_time(m3: Connection, httpserver: HTTPServer) -> None:
    endpoint = serve(httpserver, TokenEndpoint(delay=0.3))
    tokens: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def worker() -> None:
        from django.db import connection

        try:
            manager = token_manager_for(Connection.objects.get(pk=m3.pk))
            barrier.wait()
            tokens.append(manager.access_token())
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert len(endpoint.requests) == 1
    assert tokens == ["at-1"] * 6


def test_client_credentials_grant_for_ifs(db: Any, httpserver: HTTPServer) -> None:
    seen: list[dict[str, str]] = []

    def endpoint(request: Request) -> Response:
        seen.append({k: v[0] for k, v in parse_qs(request.get_data(as_text=True)).items()})
        body = {"access_token": "ifs-at", "expires_in": 180, "token_type": "Bearer"}
        return Response(json.dumps(body), 200, content_type="application/json")

    path = "/auth/realms/acme/protocol/openid-connect/token"
    httpserver.expect_request(path, method="POST").respond_with_handler(endpoint)
    conn = Connection(
        name="Any",
        slug="any",
        kind="stripe",
        credentials={"api_key": "sk_test_abcdefghijkl"},
        settings={"base_url": httpserver.url_for("/")},
    )
    conn.full_clean()
    conn.save()
    grant = client_credentials_grant(
        httpserver.url_for(path), "ifs-client", "ifs-secret", scope="openid microprofile-jwt"
    )
    assert TokenManager(conn, grant).access_token() == "ifs-at"
    assert seen == [
        {
            "grant_type": "client_credentials",
            "scope": "openid microprofile-jwt",
            "client_id": "ifs-client",
            "client_secret": "ifs-secret",
        }
    ]
    assert OAuthToken.objects.get(connection=conn).lifetime_seconds == 180
