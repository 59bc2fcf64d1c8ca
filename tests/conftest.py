"""Shared fixtures: connections of every kind, an integration on the test flow, its target."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection as db_connection

from connections import usage
from connections.models import Connection
from connections.sandbox.server import SIMULATORS
from connections.sandbox.sftp import SftpSandbox
from syncs.flows import FLOWS
from syncs.models import Integration
from tests.sandbox_fixtures import (  # noqa: F401  (fixtures)
    cin7_connection,
    cin7_sim,
    ifs_connection,
    ifs_sim,
    m3_connection,
    m3_sim,
    stripe_connection,
    stripe_sim,
    wise_connection,
    wise_sim,
)
from tests.syncs.testflow import SOURCE, TARGET, LedgerTestFlow

logger = logging.getLogger(__name__)

IONAPI = {
    "ti": "ACME_TST",
    "cn": "ml-connector",
    "ci": "ACME_TST~client-id-abc",
    "cs": "client-secret-value-123",
    "iu": "http://127.0.0.1:9/infor",
    "pu": "http://127.0.0.1:9/ACME_TST/as/",
    "oa": "authorization.oauth2",
    "ot": "token.oauth2",
    "or": "revoke_token.oauth2",
    "saak": "ACME_TST#service-access-key",
    "sask": "service-secret-key-value-xyz",
    "ev": "U1234",
    "v": "1.0",
}

requires_postgres = pytest.mark.skipif(
    "postgresql" not in __import__("django.conf").conf.settings.DATABASES["default"]["ENGINE"],
    reason="needs PostgreSQL (the CI's second pass sets DATABASE_URL)",
)


def free_port() -> int:
    """A loopback port nothing listens on (for a server a test starts itself)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ionapi_bytes(**overrides: Any) -> bytes:
    return json.dumps({**IONAPI, **overrides}).encode()


@pytest.fixture(autouse=True)
def fresh_usage_notes() -> Iterator[None]:
    """A connection's use is noted afresh in each test (its quiet minute is per process)."""
    usage.forget()
    yield
    usage.forget()


@pytest.fixture
def make_connection(db: Any) -> Any:
    """A saved connection of any registered kind, to its simulator's address (nothing serves
    there unless the test starts it)."""

    def make(kind: str = "stripe", slug: str | None = None, **settings: Any) -> Connection:
        (sim_class,) = [c for c in SIMULATORS.values() if c.kind == kind]
        values = sim_class().connection_values("http://127.0.0.1:9")
        credentials = dict(IONAPI) if kind == "infor_m3" else values["credentials"]
        conn = Connection(
            name=f"{kind} test",
            slug=slug or f"{kind}-test",
            kind=kind,
            credentials=credentials,
            settings={**values["settings"], **settings},
        )
        conn.full_clean()
        conn.save()
        return conn

    return make


@pytest.fixture
def test_flow(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[LedgerTestFlow]]:
    """Registers the test-only flow and resets its source and target."""
    monkeypatch.setitem(FLOWS, LedgerTestFlow.key, LedgerTestFlow)
    SOURCE.clear()
    TARGET.reset()
    yield LedgerTestFlow
    SOURCE.clear()
    TARGET.reset()


@pytest.fixture
def integration(make_connection: Any, test_flow: Any) -> Integration:
    source = make_connection("stripe")
    target = make_connection("infor_m3")
    integ = Integration(
        name="Test payments", slug="test-payments", flow=test_flow.key, source=source, target=target
    )
    integ.full_clean()
    integ.save()
    return integ


@pytest.fixture
def close_db_after_thread() -> Any:
    """Call in a worker thread's finally: each thread has its own DB connection to close."""
    return db_connection.close


@pytest.fixture
def sftp(tmp_path: Path) -> Iterator[SftpSandbox]:
    """A real SFTP server (asyncssh) serving an empty ``outbound`` folder."""
    (tmp_path / "root" / "outbound").mkdir(parents=True)
    served = SftpSandbox(tmp_path / "root").start()
    yield served
    served.stop()
