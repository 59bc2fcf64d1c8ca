"""Cin7's 60 calls a minute, honoured by two workers sharing one application key: a minute and
more of steady calls from both, through the shared rate limiter (the database, or Redis), and
not one 503 from Cin7.  About 65 s, so it runs in CI's PostgreSQL + Redis pass."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from django.db import connection as db_connection

from connections.models import Connection
from connections.providers.registry import client_for
from connections.sandbox.base import RateLimit, Served
from connections.sandbox.cin7 import Cin7Simulator
from tests.conftest import requires_postgres

pytestmark = [requires_postgres, pytest.mark.timeout(180)]
CALLS = 62  # past a minute: into Cin7's second window


def test_two_workers_stay_under_sixty_calls_a_minute(
    transactional_db: Any, cin7_sim: Served, cin7_connection: Connection
) -> None:
    sim: Cin7Simulator = cin7_sim.app  # type: ignore[assignment]
    sim.rate_limit = RateLimit(per_minute=60)  # Cin7's own limit: a 60-second window
    settings = {k: v for k, v in cin7_connection.settings.items() if k != "rate_limit_per_minute"}
    Connection.objects.filter(pk=cin7_connection.pk).update(settings=settings)  # the default
    made: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        try:
            client = client_for(Connection.objects.get(pk=cin7_connection.pk))
            while True:
                with lock:
                    if len(made) >= CALLS:
                        return
                    made.append(0.0)
                client.probe()
        except BaseException as exc:
            errors.append(exc)
        finally:
            db_connection.close()

    started = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=150)
    elapsed = time.monotonic() - started
    assert not errors, errors
    assert sim.limited == 0 and sim.rate_limit.rejected == 0  # not one 503
    assert sim.api_requests >= CALLS
    assert elapsed >= (CALLS - 1) * 60 / 58 - 1  # the pace was the shared limit, not luck
