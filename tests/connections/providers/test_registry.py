"""The provider registry (what derives from it) and an HTTP provider's client: built from the
connection, throttled by the shared rate limiter."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from pytest_httpserver import HTTPServer
from werkzeug import Response

from connections import redaction
from connections.models import Connection, RateLimitBucket, connection_kinds
from connections.providers.base import HttpProvider
from connections.providers.errors import RateLimited
from connections.providers.registry import SYSTEMS, client_for, kind_choices, webhook_systems
from connections.providers.stripe import StripeProvider


class EchoProvider(HttpProvider):
    kind = "stripe"
    label = "Echo"
    spec = StripeProvider.spec

    def ping(self) -> dict[str, Any]:
        return self.http.get("v1/ping").json()


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> type[EchoProvider]:
    monkeypatch.setitem(SYSTEMS, "stripe", EchoProvider)
    return EchoProvider


def test_kinds_and_webhook_routes_derive_from_the_registered_systems() -> None:
    assert kind_choices() == connection_kinds() == [(p.kind, p.label) for p in SYSTEMS.values()]
    field = Connection._meta.get_field("kind")
    assert [c for c, _ in field.choices] == list(SYSTEMS)
    assert [p.kind for p in webhook_systems()] == ["stripe", "wise"]


def test_every_system_adds_its_secret_shapes_to_redaction() -> None:
    assert redaction.is_secret_key("sask") and redaction.is_secret_key("CS")
    assert redaction.scrub_text("key sk_live_abcdef123456") == "key sk_live_***"


def test_a_connection_of_a_system_with_no_client_says_so(make_connection: Any) -> None:
    conn = make_connection("stripe")
    Connection.objects.filter(pk=conn.pk).update(kind="netsuite")
    conn.refresh_from_db()
    with pytest.raises(LookupError, match="No client is registered for netsuite"):
        client_for(conn)
    with pytest.raises(ValidationError, match="no client for this system"):
        conn.full_clean()


def test_the_client_follows_the_connection_and_its_shared_rate_limit(
    make_connection: Any,
    registered: type[EchoProvider],
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/v1/ping").respond_with_json({"ok": True})
    conn = make_connection(
        "stripe",
        base_url=httpserver.url_for("/"),
        rate_limit_per_minute=120,
        rate_limit_burst=1,
        read_timeout=7,
    )
    sleeps: list[float] = []
    provider = client_for(conn, sleep=sleeps.append)
    assert isinstance(provider, EchoProvider) and provider.http.config.read_timeout == 7.0
    for _ in range(3):
        assert provider.ping() == {"ok": True}
    # 120/min with no burst: a slot every 0.5 s, reserved in the shared bucket (the fake sleep
    # lets no time pass, so the third request is told to wait twice as long as the second).
    assert len(sleeps) == 2
    assert sleeps[0] == pytest.approx(0.5, abs=0.1) and sleeps[1] == pytest.approx(1.0, abs=0.1)
    key = f"connection:{conn.pk}"
    if settings.MLC["RATE_LIMIT_BACKEND"] == "db":
        assert RateLimitBucket.objects.get(key=key).tat > 0
    else:
        import redis

        prefix = settings.MLC["RATE_LIMIT_PREFIX"]
        assert redis.Redis.from_url(settings.REDIS_URL).exists(f"{prefix}{key}")


def test_a_429_with_retry_after_holds_every_worker_off(
    make_connection: Any,
    registered: type[EchoProvider],
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/v1/ping").respond_with_response(
        Response("", 429, {"Retry-After": "120"})
    )
    conn = make_connection(
        "stripe", base_url=httpserver.url_for("/"), max_retry_seconds=30, rate_limit_per_minute=1500
    )
    with pytest.raises(RateLimited):
        client_for(conn, sleep=lambda s: None).ping()
    # Another worker's client now refuses locally instead of hammering the remote.
    other = client_for(conn, sleep=lambda s: None)
    with pytest.raises(RateLimited, match="next slot in"):
        other.ping()
    assert len(httpserver.log) == 1
