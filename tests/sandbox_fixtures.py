"""Fixtures that serve the sandbox simulators on loopback and connect to them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from connections.models import Connection
from connections.providers.cin7 import Cin7Core
from connections.sandbox.base import Served, Simulator
from connections.sandbox.cin7 import Cin7Simulator
from connections.sandbox.ifs import IfsSimulator
from connections.sandbox.m3 import M3Simulator
from connections.sandbox.stripe import StripeSimulator
from connections.sandbox.wise import WiseSimulator

# Generous enough for a loaded CI machine, short enough that a hang fails fast.
TEST_SETTINGS = {"max_retry_seconds": 20, "read_timeout": 5}


def connect(sim: Simulator, url: str, *, slug: str, name: str, **settings: Any) -> Connection:
    """A saved connection to ``sim`` served at ``url`` (what the demo would create)."""
    values = sim.connection_values(url)
    conn = Connection(
        name=name,
        slug=slug,
        kind=values["kind"],
        credentials=values["credentials"],
        settings={**values["settings"], **TEST_SETTINGS, **settings},
    )
    conn.full_clean()
    conn.save()
    return conn


@pytest.fixture
def m3_sim() -> Iterator[Served]:
    served = Served(M3Simulator()).start()
    yield served
    served.stop()


@pytest.fixture
def m3_connection(db: Any, m3_sim: Served) -> Connection:
    return connect(m3_sim.app, m3_sim.url, slug="m3-sandbox", name="CloudSuite sandbox")


@pytest.fixture
def stripe_sim() -> Iterator[Served]:
    sim = StripeSimulator()
    sim.webhooks.synchronous = True  # deliveries happen before the sandbox action returns
    served = Served(sim).start()
    yield served
    served.stop()


@pytest.fixture
def stripe_connection(db: Any, stripe_sim: Served) -> Connection:
    return connect(
        stripe_sim.app, stripe_sim.url, slug="stripe-sandbox", name="Stripe sandbox", max_attempts=3
    )


@pytest.fixture
def ifs_sim() -> Iterator[Served]:
    served = Served(IfsSimulator()).start()
    yield served
    served.stop()


@pytest.fixture
def ifs_connection(db: Any, ifs_sim: Served) -> Connection:
    return connect(ifs_sim.app, ifs_sim.url, slug="ifs-sandbox", name="IFS Cloud sandbox")


@pytest.fixture
def wise_sim() -> Iterator[Served]:
    sim = WiseSimulator()
    sim.synchronous = True  # deliveries happen before the sandbox action returns
    served = Served(sim).start()
    yield served
    served.stop()


@pytest.fixture
def wise_connection(db: Any, wise_sim: Served) -> Connection:
    return connect(wise_sim.app, wise_sim.url, slug="wise-sandbox", name="Wise sandbox")


@pytest.fixture
def cin7_sim() -> Iterator[Served]:
    sim = Cin7Simulator(rate_limit_per_minute=None)  # a test that wants the limit sets it
    served = Served(sim).start()
    yield served
    served.stop()


@pytest.fixture
def cin7_connection(db: Any, cin7_sim: Served) -> Connection:
    return connect(
        cin7_sim.app,
        cin7_sim.url,
        slug="cin7-sandbox",
        name="Cin7 sandbox",
        rate_limit_per_minute=6000,
        # A page is up to 1,000 rows (contract: Limit ≤ 1000), each checked against the OpenAPI
        # schema by the simulator: wait for it as the product does (30 s), not the 5 s the
        # other simulators' small answers allow.
        read_timeout=Cin7Core.spec.default("read_timeout"),
    )


def stampli_connection(
    server: Any, *, name: str = "Stampli", slug: str = "stampli", **settings: Any
) -> Any:
    """A Stampli connection to an SFTP sandbox, its host key pinned (saved, checked)."""
    from connections.models import Connection

    conn = Connection(
        name=name,
        slug=slug,
        kind="stampli",
        credentials={"password": server.users["sandbox"]},
        settings={
            "host": server.host,
            "port": server.port,
            "username": "sandbox",
            "host_key": server.host_key_line,
            **settings,
        },
    )
    conn.full_clean()
    conn.save()
    return conn
