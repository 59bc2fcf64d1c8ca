"""A per-connection rate limiter shared by every worker of a deployment (GCRA).

The generic cell rate algorithm keeps one number per bucket, the theoretical arrival time (TAT)
of the next request.  ``acquire`` reserves a slot and returns how long the caller must sleep
before sending, so concurrent callers queue fairly instead of stampeding.  ``penalize`` pushes
the TAT forward when the remote answers 429 with Retry-After, so every worker backs off, not only
the one that was told.

Backends: the database (default; a row per bucket, updated under a row lock) and Redis (one Lua
script, clock taken from the Redis server) when ``REDIS_URL`` is set.  Either way a fast
connection's slots are reserved in batches (``LeasingLimiter``), so the shared write is paid
once per batch, not once per request.
"""

from __future__ import annotations

import collections
import functools
import logging
import threading
import time
from typing import Protocol

from django.conf import settings
from django.db import transaction

from connections.providers.errors import RateLimited

logger = logging.getLogger(__name__)


class RateLimiter(Protocol):
    """What the ApiClient needs from a limiter."""

    def acquire(self, key: str, *, per_second: float, burst: int, max_wait: float) -> float:
        """Reserve a slot; return the seconds to wait before using it.

        Raises ``RateLimited`` (without reserving) when the wait would exceed ``max_wait``.
        """
        ...

    def penalize(self, key: str, *, seconds: float) -> None:
        """Hold every caller of ``key`` off for ``seconds``."""
        ...


def _gcra(tat: float, now: float, per_second: float, burst: int) -> tuple[float, float]:
    """Return (wait, new_tat) for one request."""
    interval = 1.0 / per_second
    tolerance = interval * (max(burst, 1) - 1)
    tat = max(tat, now)
    wait = max(0.0, tat - tolerance - now)
    return wait, tat + interval


class DatabaseRateLimiter:
    """GCRA state in ``RateLimitBucket`` rows, updated under a row lock."""

    def acquire(
        self, key: str, *, per_second: float, burst: int, max_wait: float, count: int = 1
    ) -> float:
        from connections.models import RateLimitBucket

        with transaction.atomic():
            bucket, _ = RateLimitBucket.objects.select_for_update().get_or_create(key=key)
            wait, new_tat = _gcra(bucket.tat, time.time(), per_second, burst)
            if wait > max_wait:
                raise RateLimited(
                    f"Rate limit for {key}: next slot in {wait:.1f}s", retry_after=wait
                )
            bucket.tat = new_tat + (count - 1) / per_second
            bucket.save(update_fields=["tat", "updated_at"])
        return wait

    def penalize(self, key: str, *, seconds: float) -> None:
        from connections.models import RateLimitBucket

        with transaction.atomic():
            bucket, _ = RateLimitBucket.objects.select_for_update().get_or_create(key=key)
            bucket.tat = max(bucket.tat, time.time() + seconds)
            bucket.save(update_fields=["tat", "updated_at"])


_ACQUIRE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local max_wait = tonumber(ARGV[3])
local count = tonumber(ARGV[4] or '1')
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - tolerance - now
if wait < 0 then wait = 0 end
if wait > max_wait then return {0, tostring(wait)} end
local new_tat = tat + interval * count
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil((new_tat - now) * 1000) + 1000)
return {1, tostring(wait)}
"""

_PENALIZE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local until_ = now + tonumber(ARGV[1])
if until_ > tat then
  redis.call('SET', KEYS[1], tostring(until_), 'PX', math.ceil(tonumber(ARGV[1]) * 1000) + 1000)
end
return 1
"""


class RedisRateLimiter:
    """GCRA state in Redis; the Redis server's clock is the one clock all machines share.

    Redis out of reach (stopped, restarting, a network cut) is not a failure of the request
    that wanted a slot: the slot is taken from the database's buckets instead — shared by every
    worker too, so the limit still holds across machines — until Redis answers again (tried
    again after ``RETRY_SECONDS``, doubling up to a minute while it stays away).
    """

    RETRY_SECONDS = 1.0

    def __init__(self, url: str, prefix: str = "mlc:rl:") -> None:
        import redis

        self._errors = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)
        self._redis = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
        self._prefix = prefix
        self._acquire = self._redis.register_script(_ACQUIRE_LUA)
        self._penalize = self._redis.register_script(_PENALIZE_LUA)
        self._fallback = DatabaseRateLimiter()
        self._away_until = 0.0  # monotonic time before which Redis is not tried again
        self._away_for = 0.0

    def _reachable(self) -> bool:
        return time.monotonic() >= self._away_until

    def _went_away(self, exc: Exception) -> None:
        self._away_for = min(max(self._away_for * 2, self.RETRY_SECONDS), 60.0)
        self._away_until = time.monotonic() + self._away_for
        logger.warning(
            "Redis rate limiter unreachable (%s): the database's buckets stand in for %.0f s",
            type(exc).__name__,
            self._away_for,
        )

    def acquire(
        self, key: str, *, per_second: float, burst: int, max_wait: float, count: int = 1
    ) -> float:
        if self._reachable():
            interval = 1.0 / per_second
            try:
                ok, wait = self._acquire(
                    keys=[self._prefix + key],
                    args=[interval, interval * (max(burst, 1) - 1), max_wait, count],
                )
            except self._errors as exc:
                self._went_away(exc)
            else:
                self._away_for = 0.0
                wait = float(wait)
                if not int(ok):
                    raise RateLimited(
                        f"Rate limit for {key}: next slot in {wait:.1f}s", retry_after=wait
                    )
                return wait
        return self._fallback.acquire(
            key, per_second=per_second, burst=burst, max_wait=max_wait, count=count
        )

    def penalize(self, key: str, *, seconds: float) -> None:
        if self._reachable():
            try:
                self._penalize(keys=[self._prefix + key], args=[seconds])
                return
            except self._errors as exc:
                self._went_away(exc)
        self._fallback.penalize(key, seconds=seconds)


class LeasingLimiter:
    """Reserves slots in batches from the shared limiter and hands them out in this process, so
    a fast connection costs one shared write per batch instead of one per request.

    A lease holds at most ``LEASE_SECONDS`` of the connection's rate (one slot for a slow
    connection: nothing changes there).  Slots are reserved in the shared state, so the limit
    across every worker is never exceeded; a slot left unused for longer than the burst
    tolerance is dropped rather than spent late, so leased slots never add up to a burst, and
    slots leased at one pace are never spent at another (a connection's limit just lowered)."""

    LEASE_SECONDS = 0.2
    MAX_LEASE = 50

    def __init__(self, inner: RateLimiter) -> None:
        self.inner = inner
        self._slots: dict[str, collections.deque[float]] = {}
        self._refilling: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str, *, per_second: float, burst: int, max_wait: float) -> float:
        """A slot's wait.  The process lock guards only the local slots: the shared write that
        reserves a new lease happens outside it, by one thread per key while the others wait
        for its lease (so other keys, and threads with a slot in hand, never queue behind a
        database or Redis round trip)."""
        interval = 1.0 / per_second
        lease = max(1, min(self.MAX_LEASE, int(per_second * self.LEASE_SECONDS)))
        if lease == 1:
            return self.inner.acquire(key, per_second=per_second, burst=burst, max_wait=max_wait)
        stale = max(interval * max(burst, 1), 0.05)
        local = f"{key}@{per_second:g}/{burst}"  # slots leased at another pace are not spent
        while True:
            with self._lock:
                slots = self._slots.setdefault(local, collections.deque())
                now = time.monotonic()
                while slots and slots[0] < now - stale:
                    slots.popleft()  # too late to spend without bunching: let it go
                if slots:
                    return max(0.0, slots.popleft() - now)
                refill = self._refilling.get(local)
                mine = refill is None
                if mine:
                    refill = self._refilling[local] = threading.Event()
            assert refill is not None
            if not mine:  # another thread is leasing for this key: take from its lease
                refill.wait(timeout=max_wait + 1.0)
                continue
            try:
                wait = self.inner.acquire(  # type: ignore[call-arg]
                    key, per_second=per_second, burst=burst, max_wait=max_wait, count=lease
                )
            except BaseException:
                with self._lock:
                    self._refilling.pop(local, None)
                refill.set()
                raise
            # The wait counts from when the shared state answered: somewhere in the round trip.
            # Counting from its end may start the lease a little late, never early.
            start = time.monotonic()
            with self._lock:
                slots = self._slots.setdefault(local, collections.deque())
                slots.extend(start + wait + i * interval for i in range(lease))
                self._refilling.pop(local, None)
                slot = slots.popleft()
            refill.set()
            return max(0.0, slot - time.monotonic())

    def penalize(self, key: str, *, seconds: float) -> None:
        with self._lock:  # what was leased, at any pace, is not to be spent during the penalty
            for local in [k for k in self._slots if k.rpartition("@")[0] == key]:
                self._slots.pop(local, None)
        self.inner.penalize(key, seconds=seconds)


@functools.cache
def _redis_limiter(url: str, prefix: str) -> RedisRateLimiter:
    return RedisRateLimiter(url, prefix=prefix)


def get_rate_limiter() -> RateLimiter:
    """The limiter this deployment is configured for."""
    if settings.MLC["RATE_LIMIT_BACKEND"] == "redis":
        if not settings.REDIS_URL:
            raise RuntimeError("RATE_LIMIT_BACKEND=redis needs REDIS_URL.")
        return _leasing(_redis_limiter(settings.REDIS_URL, settings.MLC["RATE_LIMIT_PREFIX"]))
    return _leasing(_database_limiter())


@functools.cache
def _database_limiter() -> DatabaseRateLimiter:
    return DatabaseRateLimiter()


@functools.cache
def _leasing(inner: RateLimiter) -> LeasingLimiter:
    """One leasing limiter per backend and process: its leased slots are the process's."""
    return LeasingLimiter(inner)
