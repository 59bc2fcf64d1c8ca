"""Testing a connection answers within about ten seconds, in plain words, and saving a
connection tests it and says how it went."""

from __future__ import annotations

import socket
import time
from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from connections.models import Connection
from connections.services import connection_check
from tests.conftest import ionapi_bytes


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once it is closed


def test_an_unreachable_host_is_said_plainly_within_ten_seconds(make_connection: Any) -> None:
    port = _closed_port()
    conn = make_connection(
        "stripe", base_url=f"http://127.0.0.1:{port}", max_attempts=5, max_retry_seconds=120
    )
    started = time.monotonic()
    result = connection_check(connection=conn)
    took = time.monotonic() - started
    assert not result.ok and took < 10
    assert result.message == f"127.0.0.1:{port} refused the connection: check the address and port."
    assert "Error" not in result.message  # no Python exception names
    conn.refresh_from_db()
    assert conn.status == Connection.Status.FAILING and "127.0.0.1" in conn.last_check_message


def test_saving_a_connection_that_fails_its_test_does_not_say_success(
    admin_client: Client,
) -> None:
    saved = admin_client.post(
        "/admin/connections/connection/add/?kind=infor_m3",
        {
            "name": "CloudSuite TST",
            "slug": "cloudsuite-tst",
            "kind": "infor_m3",
            "credentials_file": SimpleUploadedFile("ACME.ionapi", ionapi_bytes()),
            "setting__cono": "100",
            "setting__divi": "AAA",
        },
        follow=True,
    )
    text = saved.content.decode()
    assert "but the test failed" in text and "127.0.0.1:9 refused the connection" in text
    assert "was added successfully" not in text
    assert Connection.objects.get(slug="cloudsuite-tst").status == Connection.Status.FAILING


def test_a_server_that_never_answers_is_given_up_on_within_ten_seconds(
    make_connection: Any,
) -> None:
    with socket.socket() as silent:  # accepts connections (the backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        conn = make_connection("stripe", base_url=f"http://127.0.0.1:{port}", read_timeout=60)
        started = time.monotonic()
        result = connection_check(connection=conn)
        took = time.monotonic() - started
    assert not result.ok and took < 10
    assert result.message == f"127.0.0.1:{port} did not answer within 5 s."


def test_a_rate_limit_reached_by_the_runs_is_said_plainly() -> None:
    from connections.providers.errors import RateLimited
    from connections.providers.plain import check_failure

    busy = RateLimited("Rate limit for connection:6: next slot in 9.0s", retry_after=9.0)
    message = check_failure(busy, system="Cin7 Core", where="x", connect_timeout=3, read_timeout=5)
    assert message.startswith("Cin7 Core is busy") and "connection:6" not in message
