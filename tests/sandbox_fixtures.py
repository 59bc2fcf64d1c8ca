"""Fixtures that serve the sandbox simulators on loopback and connect to them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from connections.models import Connection
from connections.sandbox.base import Served
from connections.sandbox.m3 import M3Simulator
from connections.sandbox.stripe import StripeSimulator


@pytest.fixture
def m3_sim() -> Iterator[Served]:
    served = Served(M3Simulator()).start()
    yield served
    served.stop()


@pytest.fixture
def m3_connection(db: Any, m3_sim: Served) -> Connection:
    sim: M3Simulator = m3_sim.app  # type: ignore[assignment]
    conn = Connection(
        name="CloudSuite sandbox",
        slug="m3-sandbox",
        kind="infor_m3",
        credentials=sim.ionapi(m3_sim.url),
        settings={"cono": 100, "divi": "AAA", "max_retry_seconds": 20, "read_timeout": 5},
    )
    conn.full_clean()
    conn.save()
    return conn


@pytest.fixture
def stripe_sim() -> Iterator[Served]:
    sim = StripeSimulator()
    sim.webhooks.synchronous = True  # deliveries happen before the sandbox action returns
    served = Served(sim).start()
    yield served
    served.stop()


@pytest.fixture
def stripe_connection(db: Any, stripe_sim: Served) -> Connection:
    sim: StripeSimulator = stripe_sim.app  # type: ignore[assignment]
    conn = Connection(
        name="Stripe sandbox",
        slug="stripe-sandbox",
        kind="stripe",
        credentials={"api_key": sim.api_key, "webhook_secret": "whsec_sandboxsecret0123"},
        settings={
            "base_url": stripe_sim.url,
            "max_retry_seconds": 20,
            "max_attempts": 3,
            "read_timeout": 5,
        },
    )
    conn.full_clean()
    conn.save()
    return conn
