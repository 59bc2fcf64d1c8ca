"""ApiClient against a real HTTP server on loopback: retries, Retry-After, typed errors, 401."""

from __future__ import annotations

import socket
import time
from types import MappingProxyType
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from connections.providers.errors import (
    AuthFailed,
    NotFound,
    OutcomeUnknown,
    RateLimited,
    Rejected,
    Resolution,
    Transient,
    resolution_of,
)
from connections.providers.http import ApiClient, ClientConfig, parse_retry_after
from connections.redaction import Redactor


class Sleeps(list):
    """A fake sleep that records what it was asked to wait."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def client(server: HTTPServer, sleeps: Sleeps, **config: Any) -> ApiClient:
    cfg = ClientConfig(base_url=server.url_for("/"), read_timeout=2, **config)
    return ApiClient(cfg, sleep=sleeps, redactor=Redactor(["sk_test_supersecretvalue"]))


def sequence(
    server: HTTPServer, path: str, responses: list[Response], method: str = "GET"
) -> list[Request]:
    """Serve ``responses`` in order at ``path``; return the list the requests land in."""
    seen: list[Request] = []

    def handler(request: Request) -> Response:
        seen.append(request)
        return responses[min(len(seen), len(responses)) - 1]

    server.expect_request(path, method=method).respond_with_handler(handler)
    return seen


def test_429_with_retry_after_waits_what_the_server_said(httpserver: HTTPServer) -> None:
    sleeps = Sleeps()
    seen = sequence(
        httpserver,
        "/x",
        [Response("slow down", 429, {"Retry-After": "3"}), Response('{"ok": true}', 200)],
    )
    assert client(httpserver, sleeps).get("x").json() == {"ok": True}
    assert len(seen) == 2 and sleeps == [3.0]


def test_429_without_retry_after_backs_off_with_full_jitter_then_gives_up(
    httpserver: HTTPServer,
) -> None:
    sleeps = Sleeps()
    seen = sequence(httpserver, "/x", [Response("slow down", 429)])
    with pytest.raises(RateLimited) as info:
        client(httpserver, sleeps, max_attempts=5, backoff_base=0.5, backoff_cap=3).get("x")
    assert len(seen) == 5 and len(sleeps) == 4
    for attempt, slept in enumerate(sleeps, start=1):
        assert 0 <= slept <= min(3, 0.5 * 2 ** (attempt - 1))
    assert info.value.status == 429


def test_retry_after_beyond_the_time_budget_gives_up_at_once(httpserver: HTTPServer) -> None:
    sleeps = Sleeps()
    seen = sequence(httpserver, "/x", [Response("", 429, {"Retry-After": "600"})])
    with pytest.raises(RateLimited) as info:
        client(httpserver, sleeps, max_retry_seconds=60).get("x")
    assert len(seen) == 1 and sleeps == [] and info.value.retry_after == 600


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_errors_are_retried_for_reads(httpserver: HTTPServer, status: int) -> None:
    sleeps = Sleeps()
    seen = sequence(
        httpserver, "/x", [Response("", status), Response("", status), Response("{}", 200)]
    )
    client(httpserver, sleeps).get("x")
    assert len(seen) == 3 and len(sleeps) == 2


@pytest.mark.parametrize("status", [500, 502, 504])
def test_a_write_that_may_have_been_applied_is_not_retried(
    httpserver: HTTPServer, status: int
) -> None:
    sleeps = Sleeps()
    seen = sequence(httpserver, "/x", [Response("", status)], method="POST")
    with pytest.raises(OutcomeUnknown):
        client(httpserver, sleeps).post("x", json={"amount": 1})
    assert len(seen) == 1


def test_a_write_refused_with_503_or_429_was_not_applied_and_is_retried(
    httpserver: HTTPServer,
) -> None:
    sleeps = Sleeps()
    seen = sequence(
        httpserver, "/x", [Response("", 503), Response("", 429), Response("{}", 201)], method="POST"
    )
    client(httpserver, sleeps).post("x", json={})
    assert len(seen) == 3


def test_a_write_with_an_idempotency_key_is_retried_and_keeps_its_key(
    httpserver: HTTPServer,
) -> None:
    seen = sequence(httpserver, "/x", [Response("", 502), Response("{}", 200)], method="POST")
    client(httpserver, Sleeps()).post("x", json={}, idempotency_key="mlc:1:k:1")
    assert [r.headers["Idempotency-Key"] for r in seen] == ["mlc:1:k:1", "mlc:1:k:1"]


def test_a_plain_500_on_a_read_is_not_retried(httpserver: HTTPServer) -> None:
    seen = sequence(httpserver, "/x", [Response("boom", 500)])
    with pytest.raises(Transient):
        client(httpserver, Sleeps()).get("x")
    assert len(seen) == 1


def test_client_errors_are_typed_and_not_retried(httpserver: HTTPServer) -> None:
    seen = sequence(
        httpserver,
        "/bad",
        [Response('{"error": {"message": "Invalid CUNO"}}', 400, content_type="application/json")],
    )
    sequence(httpserver, "/gone", [Response("", 404)])
    with pytest.raises(Rejected) as info:
        client(httpserver, Sleeps()).get("bad")
    assert "Invalid CUNO" in info.value.message and len(seen) == 1
    with pytest.raises(NotFound):
        client(httpserver, Sleeps()).get("gone")


def test_connection_refused_is_retried_even_for_writes(unused_port: int) -> None:
    sleeps = Sleeps()
    api = ApiClient(
        ClientConfig(base_url=f"http://127.0.0.1:{unused_port}/", max_attempts=3), sleep=sleeps
    )
    with pytest.raises(Transient) as info:
        api.post("x", json={})
    assert not isinstance(info.value, OutcomeUnknown) and len(sleeps) == 2


def test_a_read_timeout_after_sending_a_write_is_an_unknown_outcome(httpserver: HTTPServer) -> None:
    def slow(request: Request) -> Response:
        time.sleep(1.5)
        return Response("{}", 200)

    httpserver.expect_request("/slow", method="POST").respond_with_handler(slow)
    api = ApiClient(
        ClientConfig(base_url=httpserver.url_for("/"), read_timeout=0.3), sleep=Sleeps()
    )
    with pytest.raises(OutcomeUnknown):
        api.post("slow", json={})


def test_401_re_authenticates_once_then_succeeds(httpserver: HTTPServer) -> None:
    class Auth:
        def __init__(self) -> None:
            self.token, self.refused = "old", []

        def apply(self, headers: dict[str, str]) -> str:
            headers["Authorization"] = f"Bearer {self.token}"
            return self.token

        def on_unauthorized(self, used: str | None) -> None:
            self.refused.append(used)
            self.token = "new"

    def handler(request: Request) -> Response:
        ok = request.headers["Authorization"] == "Bearer new"
        return Response("{}", 200 if ok else 401)

    httpserver.expect_request("/x").respond_with_handler(handler)
    auth = Auth()
    api = ApiClient(ClientConfig(base_url=httpserver.url_for("/")), auth=auth, sleep=Sleeps())
    api.get("x")
    assert auth.refused == ["old"]
    auth.token = "revoked"
    auth.on_unauthorized = lambda used: None  # re-authentication does not help any more
    with pytest.raises(AuthFailed):
        api.get("x")


def test_secrets_never_reach_error_messages(httpserver: HTTPServer) -> None:
    body = '{"message": "bad key sk_test_supersecretvalue", "password": "hunter22"}'
    sequence(httpserver, "/x", [Response(body, 400, content_type="application/json")])
    with pytest.raises(Rejected) as info:
        client(httpserver, Sleeps()).get("x", params={"api_key": "sk_test_supersecretvalue"})
    text = f"{info.value.message} {info.value.detail}"
    assert "supersecretvalue" not in text and "hunter22" not in text


def test_parse_retry_after() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


@pytest.fixture
def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_proxies_from_the_environment_are_honoured(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The environment is read once per host, not on every request, but it is still obeyed:
    # a proxy on loopback receives the request for a host the client never resolves itself.
    monkeypatch.setenv("HTTP_PROXY", httpserver.url_for("/").rstrip("/"))
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    seen = sequence(httpserver, "/v1/ping", [Response('{"ok": true}', 200)])
    api = ApiClient(ClientConfig(base_url="http://api.example.test/", read_timeout=2))
    assert api.get("v1/ping").json() == {"ok": True}
    assert seen[0].headers["Host"] == "api.example.test"
    monkeypatch.setenv("NO_PROXY", "api.example.test")
    bypassed = ApiClient(ClientConfig(base_url="http://api.example.test/"))
    assert bypassed._proxies_for("http://api.example.test/v1/ping") == {}


@pytest.mark.parametrize(
    ("error", "resolution"),
    [
        (AuthFailed("refused"), Resolution.STOP),
        (Rejected("closed"), Resolution.REVIEW),
        (NotFound("gone"), Resolution.REVIEW),
        (Transient("503"), Resolution.RETRY),
        (RateLimited("429"), Resolution.RETRY),
        (OutcomeUnknown("timeout after sending"), Resolution.RETRY),
        (KeyError("a value the flow could not read"), Resolution.RETRY),
    ],
)
def test_each_error_says_what_a_run_does_about_it(error: Exception, resolution: Resolution) -> None:
    assert resolution_of(error) is resolution


def test_a_provider_reads_a_status_its_own_way_from_its_error_map(httpserver: HTTPServer) -> None:
    """A table, not code: a provider maps a status to the error it is (here 409 → retry), over
    the shared reading (409 → refused)."""

    class Lenient(ApiClient):
        error_map = MappingProxyType({429: RateLimited, 409: Transient})

    sequence(httpserver, "/x", [Response("busy", 409)])
    cfg = ClientConfig(base_url=httpserver.url_for("/"), read_timeout=2, max_attempts=1)
    with pytest.raises(Transient) as info:
        Lenient(cfg, sleep=Sleeps(), redactor=Redactor([])).get("x")
    assert resolution_of(info.value) is Resolution.RETRY
    with pytest.raises(Rejected) as shared:
        client(httpserver, Sleeps()).get("x")
    assert resolution_of(shared.value) is Resolution.REVIEW
