"""The shared rate limiter: GCRA pacing, shared by two processes, on the DB and on Redis."""

from __future__ import annotations

import itertools
import multiprocessing
import threading
import time
from typing import Any

import pytest
from django.conf import settings
from django.db import connections

from connections.providers.errors import RateLimited
from connections.providers.ratelimit import DatabaseRateLimiter, RedisRateLimiter, _gcra
from tests.conftest import free_port

RATE = 20.0  # requests per second
PER_PROCESS = 10


def test_gcra_allows_a_burst_then_paces() -> None:
    tat, waits = 0.0, []
    for _ in range(5):
        wait, tat = _gcra(tat, now=100.0, per_second=10, burst=3)
        waits.append(round(wait, 3))
    assert waits == [0, 0, 0, 0.1, 0.2]


def _limiter(kind: str) -> Any:
    if kind == "db":
        return DatabaseRateLimiter()
    return RedisRateLimiter(settings.REDIS_URL, prefix=f"mlc:test:{time.time_ns()}:")


def _hammer(kind: str, key: str, prefix: str | None, out: Any, start: Any) -> None:
    """Child process: take PER_PROCESS slots, sleeping as told; report send times."""
    limiter = (
        DatabaseRateLimiter()
        if kind == "db"
        else RedisRateLimiter(settings.REDIS_URL, prefix=prefix)
    )
    start.wait(30)  # both children begin together, however long each took to start
    sent = []
    for _ in range(PER_PROCESS):
        wait = limiter.acquire(key, per_second=RATE, burst=1, max_wait=30)
        time.sleep(wait)
        sent.append(time.monotonic())
    connections.close_all()
    out.put(sent)


def _two_processes(kind: str) -> list[list[float]]:
    key = f"shared-{time.time_ns()}"
    prefix = f"mlc:test:{time.time_ns()}:"
    connections.close_all()  # children must not share the parent's database socket
    ctx = multiprocessing.get_context("fork")
    out, start = ctx.Queue(), ctx.Barrier(2)
    procs = [ctx.Process(target=_hammer, args=(kind, key, prefix, out, start)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(10)
        assert p.exitcode == 0
    return results


def _assert_shared(results: list[list[float]]) -> None:
    everything = sorted(t for r in results for t in r)
    elapsed = everything[-1] - everything[0]
    # 20 requests at 20/s with no burst need ≥ 0.95 s in all; either process alone would
    # have finished its 10 in ~0.45 s if the limit were not shared.
    assert elapsed >= (2 * PER_PROCESS - 1) / RATE * 0.9, elapsed
    # And they interleave: neither process ran all of its requests first.
    first_end = min(r[-1] for r in results)
    assert sum(t <= first_end for t in everything) > PER_PROCESS


@pytest.mark.django_db(transaction=True)
def test_database_limiter_is_shared_by_two_processes() -> None:
    _assert_shared(_two_processes("db"))


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL (the CI's second pass)")
def test_redis_limiter_is_shared_by_two_processes() -> None:
    _assert_shared(_two_processes("redis"))


@pytest.mark.parametrize("kind", ["db", "redis"])
@pytest.mark.django_db(transaction=True)
def test_penalize_holds_every_caller_off_and_max_wait_refuses(kind: str) -> None:
    if kind == "redis" and not settings.REDIS_URL:
        pytest.skip("needs REDIS_URL (the CI's second pass)")
    limiter = _limiter(kind)
    assert limiter.acquire("k", per_second=100, burst=5, max_wait=1) == 0
    limiter.penalize("k", seconds=30)
    with pytest.raises(RateLimited) as info:
        limiter.acquire("k", per_second=100, burst=5, max_wait=5)
    assert 25 < info.value.retry_after <= 30
    assert limiter.acquire("other", per_second=100, burst=5, max_wait=1) == 0


@pytest.mark.django_db(transaction=True)
def test_redis_out_of_reach_is_a_slot_from_the_database_never_a_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import shutil
    import subprocess

    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("needs redis-server")
    port = free_port()
    limiter = RedisRateLimiter(f"redis://127.0.0.1:{port}/0", prefix="mlc:test:")
    monkeypatch.setattr(RedisRateLimiter, "RETRY_SECONDS", 0.2)
    # Redis is down: every acquire still answers, paced by the database's shared bucket.
    waits = [limiter.acquire("k", per_second=10, burst=2, max_wait=5) for _ in range(4)]
    assert waits[0] == 0 and waits[-1] > 0.1
    limiter.penalize("k", seconds=1)  # no error either
    from connections.models import RateLimitBucket

    assert RateLimitBucket.objects.filter(key="k").exists()
    redis = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(50):
            time.sleep(0.1)
            try:
                if limiter._redis.ping():
                    break
            except Exception as exc:  # still starting
                print(f"redis not up yet: {exc}")
        time.sleep(limiter._away_for + 0.1)
        assert limiter.acquire("fresh", per_second=10, burst=2, max_wait=5) == 0
        assert limiter._redis.exists("mlc:test:fresh")  # back on Redis once it answers
    finally:
        redis.terminate()
        redis.wait(timeout=10)
    assert limiter.acquire("again", per_second=10, burst=2, max_wait=5) >= 0  # down again


class _SlowShared:
    """A shared limiter whose every reservation is a slow round trip (a database or Redis)."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.calls: list[tuple[str, int]] = []
        self.lock = threading.Lock()
        self.next_free: dict[str, float] = {}

    def acquire(
        self, key: str, *, per_second: float, burst: int, max_wait: float, count: int = 1
    ) -> float:
        time.sleep(self.delay)
        with self.lock:
            self.calls.append((key, count))
            now = time.monotonic()
            start = max(now, self.next_free.get(key, now))
            self.next_free[key] = start + count / per_second
            return start - now

    def penalize(self, key: str, *, seconds: float) -> None:
        return None


def test_leasing_hands_out_each_slot_once_and_keeps_no_lock_over_the_shared_write() -> None:
    from connections.providers.ratelimit import LeasingLimiter

    shared = _SlowShared(delay=0.05)
    limiter = LeasingLimiter(shared)  # type: ignore[arg-type]
    moments: list[float] = []
    guard = threading.Lock()

    def take(key: str, n: int) -> None:
        for _ in range(n):
            wait = limiter.acquire(key, per_second=500, burst=10, max_wait=30)
            with guard:
                moments.append(time.monotonic() + wait)

    threads = [threading.Thread(target=take, args=("a", 25)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(moments) == 200
    ordered = sorted(moments)
    gaps = [b - a for a, b in itertools.pairwise(ordered)]
    assert min(gaps) > 1 / 500 * 0.5  # no slot handed out twice, no bunching
    assert len([c for c in shared.calls if c[0] == "a"]) <= 8  # leased in batches, not per call

    # A slow reservation for one connection does not hold up another's.
    slow = threading.Thread(target=take, args=("b", 1))
    slow.start()
    time.sleep(0.01)  # "b" is inside its round trip now
    started = time.monotonic()
    limiter.acquire("c", per_second=500, burst=10, max_wait=30)
    took = time.monotonic() - started
    slow.join()
    assert took < 0.05 + 0.04  # its own round trip, not queued behind "b"'s as well
