"""What every simulator shares: fault injection, a per-client rate limit, control endpoints and
serving on loopback (a thread for tests, ``manage.py sandbox`` for the demo).

Faults are queued and consumed in order by matching requests:

``status``         answer with an HTTP status (``Retry-After`` optional) instead of processing;
``unauthorized``   answer 401 as if the token had been revoked;
``slow``           sleep before processing (to trip read timeouts);
``lose_response``  process the request, then answer 504 as a gateway that lost the answer.

``POST /_sandbox/conditions`` sets what a real network and a real tenant add:
``{"latency_ms": 150}`` (every API request answered that much later, as a live API answers in
100 to 400 ms), ``{"rate_limit_per_minute": 6000, "rate_limit_burst": 100}`` (a token bucket: the
sustained rate and how many requests may come back to back, as Stripe limits a live account).
``GET /_sandbox/state`` reports, besides each simulator's own figures, ``max_concurrent`` (the
most API requests it was serving at once) and ``rate_limited`` (429s answered).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

logger = logging.getLogger(__name__)


@dataclass
class Fault:
    kind: str
    remaining: int = 1
    match: str = ""  # a substring of the path (or MI transaction) the fault applies to
    status: int = 500
    retry_after: float | None = None
    seconds: float = 0.0


class Faults:
    """A thread-safe queue of faults to inject."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self.taken: dict[str, int] = {}  # faults injected so far, by kind

    def add(
        self,
        kind: str,
        *,
        count: int = 1,
        match: str = "",
        status: int = 500,
        retry_after: float | None = None,
        seconds: float = 0.0,
    ) -> None:
        if kind not in ("status", "unauthorized", "slow", "lose_response"):
            raise ValueError(f"unknown fault {kind!r}")
        with self._lock:
            self._faults.append(Fault(kind, count, match, status, retry_after, seconds))

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, subject: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.match in subject:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    self.taken[fault.kind] = self.taken.get(fault.kind, 0) + 1
                    return fault
        return None


@dataclass
class RateLimit:
    """A fixed-window limit per client, answering 429 with Retry-After like a gateway."""

    per_minute: int | None = None
    window_seconds: float = 60.0
    burst: int | None = None  # set: a token bucket of this size instead of a fixed window
    _windows: dict[str, tuple[float, int]] = field(default_factory=dict)
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    rejected: int = 0

    def check(self, client: str) -> float | None:
        """None when allowed, else seconds until the window resets (or a token is back)."""
        if not self.per_minute:
            return None
        now = time.monotonic()
        if self.burst:
            return self._bucket(client, now)
        with self._lock:
            start, count = self._windows.get(client, (now, 0))
            if now - start >= self.window_seconds:
                start, count = now, 0
            if count >= self.per_minute:
                self.rejected += 1
                return max(0.01, self.window_seconds - (now - start))
            self._windows[client] = (start, count + 1)
        return None

    def _bucket(self, client: str, now: float) -> float | None:
        assert self.per_minute and self.burst
        rate = self.per_minute / 60.0
        with self._lock:
            tokens, at = self._buckets.get(client, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * rate)
            if tokens < 1.0:
                self.rejected += 1
                self._buckets[client] = (tokens, now)
                return max(0.01, (1.0 - tokens) / rate)
            self._buckets[client] = (tokens - 1.0, now)
        return None


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body), status=status, headers=headers, content_type="application/json"
    )


class Simulator:
    """Base WSGI app: control endpoints under ``/_sandbox/``, faults, rate limit, counters.

    A simulator also says how the demo and the tests connect to it (``connection_values``), how
    it fills itself with demo data (``seed``), what its users do now and then (``activity``),
    and how its state is kept across restarts (``snapshot``/``restore``).
    """

    name = "simulator"
    label = "Simulator"
    kind = ""  # the kind of connection that reaches it
    default_port = 0

    def __init__(self, *, rate_limit_per_minute: int | None = None) -> None:
        self.lock = threading.RLock()
        self.faults = Faults()
        self.rate_limit = RateLimit(per_minute=rate_limit_per_minute)
        self.request_count = 0
        self.latency = 0.0  # seconds added to every API request
        self.concurrent = 0
        self.max_concurrent = 0

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Any:
        request = Request(environ)
        try:
            response = self.dispatch(request)
        except Exception:
            logger.exception("%s simulator failed on %s", self.name, request.path)
            response = json_response({"error": {"message": "simulator error"}}, 500)
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        if request.path.startswith("/_sandbox/"):
            return self.control(request)
        with self.lock:
            self.request_count += 1
            self.concurrent += 1
            self.max_concurrent = max(self.max_concurrent, self.concurrent)
        try:
            if self.latency:
                time.sleep(self.latency)
            return self.handle(request)
        finally:
            with self.lock:
                self.concurrent -= 1

    def apply_fault(self, subject: str, process: Callable[[], Response]) -> Response:
        """Run ``process`` under whatever fault is queued for ``subject``."""
        fault = self.faults.take(subject)
        if fault is None:
            return process()
        if fault.kind == "slow":
            time.sleep(fault.seconds)
            return process()
        if fault.kind == "unauthorized":
            return json_response({"error": "invalid_token"}, 401)
        if fault.kind == "lose_response":
            process()
            return json_response({"message": "Gateway Timeout"}, 504)
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        return json_response(
            {"error": {"message": f"injected {fault.status}"}}, fault.status, headers
        )

    def control(self, request: Request) -> Response:
        """``POST /_sandbox/faults`` {kind, count, match, status, retry_after, seconds};
        ``DELETE /_sandbox/faults``; ``GET /_sandbox/state``."""
        if request.path == "/_sandbox/faults":
            if request.method == "DELETE":
                self.faults.clear()
                return json_response({"cleared": True})
            spec = request.get_json(force=True, silent=True) or {}
            self.faults.add(spec.pop("kind", ""), **spec)
            return json_response({"queued": True})
        if request.path == "/_sandbox/state":
            return json_response(
                {
                    **self.state_summary(),
                    "max_concurrent": self.max_concurrent,
                    "rate_limited": self.rate_limit.rejected,
                }
            )
        if request.path == "/_sandbox/conditions" and request.method == "POST":
            spec = request.get_json(force=True, silent=True) or {}
            try:
                self.set_conditions(**spec)
            except (TypeError, ValueError) as exc:
                return json_response({"error": str(exc)}, 400)
            return json_response({"conditions": spec})
        return self.control_action(request)

    def set_conditions(
        self,
        *,
        latency_ms: float | None = None,
        rate_limit_per_minute: int | None = None,
        rate_limit_burst: int | None = None,
    ) -> None:
        """Latency and a rate limit, as a real tenant over a real network would have them."""
        if latency_ms is not None:
            self.latency = max(0.0, float(latency_ms)) / 1000.0
        if rate_limit_per_minute is not None:
            self.rate_limit = RateLimit(
                per_minute=int(rate_limit_per_minute) or None,
                burst=int(rate_limit_burst) if rate_limit_burst else None,
            )
        with self.lock:
            self.max_concurrent = self.concurrent

    def control_action(self, request: Request) -> Response:
        if request.path == "/_sandbox/connection":  # what the demo's connection needs
            return json_response(self.connection_values(request.host_url.rstrip("/")))
        return json_response({"error": "unknown sandbox action"}, 404)

    def state_summary(self) -> dict[str, Any]:
        return {"requests": self.request_count, "rate_limited": self.rate_limit.rejected}

    def handle(self, request: Request) -> Response:
        raise NotImplementedError

    def address(self, url: str) -> str:
        """Where a person reaches what it simulates (its HTTP address, unless it serves the
        system another way)."""
        return url

    def connection_values(self, url: str) -> dict[str, Any]:
        """The kind, credentials and settings of a connection to this simulator at ``url``."""
        raise NotImplementedError

    def seed(self, **options: Any) -> None:
        """Fill an empty simulator with demo data (a no-op when it already has data)."""

    def activity(self, rng: Any) -> str:
        """Do what the system's users would do now and then; returns what happened ("": none)."""
        return ""

    def snapshot(self) -> Any:
        return None

    def restore(self, snapshot: Any) -> None:
        """Take back a state from ``snapshot``."""

    def started(self) -> None:
        """Called once its HTTP server is up (a simulator with another server starts it)."""

    def stopped(self) -> None:
        """Called when it is stopped."""


class Served:
    """A simulator served on loopback in a background thread."""

    def __init__(self, app: Simulator, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.server: BaseWSGIServer = make_server(host, port, app, threaded=True)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name=f"sandbox-{app.name}",
        )

    @property
    def url(self) -> str:
        return f"http://{self.server.host}:{self.server.port}"

    def start(self) -> Served:
        self.thread.start()
        self.app.started()
        return self

    def stop(self) -> None:
        self.app.stopped()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
