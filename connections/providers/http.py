"""The one HTTP client every provider is built on.

``ApiClient`` gives each request: connect/read timeouts; the shared per-connection rate limiter;
retries on 429, 502, 503, 504 and connection errors with exponential backoff and full jitter
(tenacity), honouring ``Retry-After``, bounded by attempts and by a total time budget; one
re-authentication on 401; typed errors; and redaction of secrets from everything it logs or
puts in an error.

Retrying a write is only safe when the request cannot have been applied: a non-idempotent
request (``idempotent=False``; POST without an idempotency key by default) is retried on 429,
503 and on failures to connect, but a timeout after sending, a 502/504 or a 500 raises
``OutcomeUnknown`` for the posting ledger to resolve.
"""

from __future__ import annotations

import email.utils
import logging
import os
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC
from types import MappingProxyType
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

import requests
import tenacity
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NameResolutionError, NewConnectionError

from connections.providers.errors import (
    ApiError,
    AuthFailed,
    NotFound,
    OutcomeUnknown,
    RateLimited,
    Rejected,
    Transient,
)
from connections.providers.ratelimit import RateLimiter
from connections.redaction import Redactor

logger = logging.getLogger(__name__)

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUSES = frozenset({429, 502, 503, 504})
# Statuses after which a non-idempotent request was certainly not applied.
NOT_APPLIED_STATUSES = frozenset({429, 503})
BODY_SNIPPET = 600
USER_AGENT = "ml-connector/0.1"


@dataclass(frozen=True)
class ClientConfig:
    """How one client talks to one remote (built from a Connection's settings)."""

    base_url: str
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_attempts: int = 5
    max_retry_seconds: float = 120.0
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    rate_limit_key: str | None = None
    rate_limit_per_minute: float | None = None
    rate_limit_burst: int = 10
    # A limit of each endpoint beside the connection's (Stripe: 25 requests a second for each
    # named operation): ``endpoint_of(method, path)`` names the endpoint a request goes to.
    endpoint_per_second: float | None = None
    endpoint_burst: int = 1  # Stripe publishes no burst for it: paced evenly
    endpoint_of: Callable[[str, str], str] | None = None

    @classmethod
    def from_connection(cls, connection: Any, base_url: str | None = None) -> ClientConfig:
        """Read timeouts, retry budget and rate limit from a ``Connection``'s settings."""
        return cls(
            base_url=base_url or connection.setting("base_url"),
            connect_timeout=float(connection.setting("connect_timeout", 5.0)),
            read_timeout=float(connection.setting("read_timeout", 30.0)),
            max_attempts=int(connection.setting("max_attempts", 5)),
            max_retry_seconds=float(connection.setting("max_retry_seconds", 120.0)),
            rate_limit_key=f"connection:{connection.pk}",
            rate_limit_per_minute=connection.setting("rate_limit_per_minute"),
            rate_limit_burst=int(connection.setting("rate_limit_burst", 10)),
        )


class Auth(Protocol):
    """Adds credentials to a request and learns when they were refused."""

    def apply(self, headers: dict[str, str]) -> str | None:
        """Set auth headers; return a handle (the token used) for ``on_unauthorized``."""
        ...

    def on_unauthorized(self, used: str | None) -> None:
        """The credentials ``used`` got a 401: make the next ``apply`` use fresh ones."""
        ...


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


def _never_sent(exc: requests.RequestException) -> bool:
    """Whether a connection error happened before the request left this machine."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, NewConnectionError | NameResolutionError | ConnectionRefusedError):
            return True
        stack.extend([getattr(current, "reason", None), current.__cause__, current.__context__])
        stack.extend(a for a in getattr(current, "args", ()) if isinstance(a, BaseException))
    return False


class ApiClient:
    """Timeouts, retries, rate limiting, auth and redaction for one remote API."""

    # The statuses a system answers its rate limit with (Cin7 Core adds 503).
    # A provider's own reading of statuses, over the shared one below (e.g. Cin7 answers 503
    # for "slow down"): status → the error it is.
    error_map: Mapping[int, type[ApiError]] = MappingProxyType({429: RateLimited})

    def __init__(
        self,
        config: ClientConfig,
        *,
        auth: Auth | None = None,
        limiter: RateLimiter | None = None,
        redactor: Redactor | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        default_headers: Mapping[str, str] | None = None,
        observer: Callable[[bool, str], None] | None = None,
    ) -> None:
        self.config = config
        # Told after each request whether the system could be used (``connections.usage``).
        self.observer = observer
        self.auth = auth
        self.limiter = limiter
        self.redact = redactor or Redactor()
        self.sleep = sleep
        self.session = session or self._new_session()
        self.default_headers = {"User-Agent": USER_AGENT, **(default_headers or {})}
        self._proxies: dict[str, dict[str, str]] = {}

    @staticmethod
    def _new_session() -> requests.Session:
        """A pooled session that reads the environment once, not on every request: proxies
        (``HTTPS_PROXY``, ``NO_PROXY`` …) per host on first use, the CA bundle
        (``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``) now.  (requests re-reads all of
        ``os.environ`` twice per request otherwise; credentials never come from ``.netrc``.)"""
        session = requests.Session()
        session.trust_env = False
        session.verify = (
            os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        )
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=16, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        return session

    def _proxies_for(self, url: str) -> dict[str, str] | None:
        """The environment's proxies for ``url``'s host, looked up once per host."""
        if self.session.trust_env:
            return None  # a session handed in reads the environment itself
        parts = urlsplit(url)
        host = f"{parts.scheme}://{parts.netloc}"
        found = self._proxies.get(host)
        if found is None:
            found = self._proxies[host] = requests.utils.get_environ_proxies(url)
        return found

    def url(self, path: str) -> str:
        """Absolute URL for ``path`` relative to the base URL (absolute URLs pass through)."""
        if path.startswith(("http://", "https://")):
            return path
        if not path:
            return self.config.base_url.rstrip("/")
        return urljoin(self.config.base_url.rstrip("/") + "/", path.lstrip("/"))

    # -- the request ------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None,
        json: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        idempotency_key: str | None = None,
        auth: bool = True,
    ) -> requests.Response:
        """Send one logical request (several attempts at most); return a 2xx/3xx response.

        Raises ``AuthFailed``, ``RateLimited``, ``Transient``, ``OutcomeUnknown``, ``Rejected``
        or ``NotFound``.
        """
        method = method.upper()
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS or idempotency_key is not None
        url = self.url(path)
        send_headers = {**self.default_headers, **(headers or {})}
        if idempotency_key:
            send_headers["Idempotency-Key"] = idempotency_key

        retrying = tenacity.Retrying(
            stop=(
                tenacity.stop_after_attempt(self.config.max_attempts)
                | tenacity.stop_before_delay(self.config.max_retry_seconds)
            ),
            wait=self._wait,
            retry=tenacity.retry_if_exception(lambda e: isinstance(e, ApiError) and e.retryable),
            sleep=self.sleep,
            reraise=True,
            before_sleep=lambda rs: self._log_retry(method, url, rs),
        )
        try:
            response = retrying(
                self._attempt,
                method,
                url,
                params=params,
                json=json,
                data=data,
                headers=send_headers,
                idempotent=idempotent,
                use_auth=auth,
            )
        except (AuthFailed, Transient) as exc:  # refused credentials, unreachable, failing
            self._observe(False, exc.message)
            raise
        except ApiError:  # it answered (a refusal of the data, a limit): the connection works
            self._observe(True)
            raise
        self._observe(True)
        return response

    def _observe(self, worked: bool, message: str = "") -> None:
        if self.observer is not None:
            try:
                self.observer(worked, message)
            except Exception as exc:  # noting the use never fails the call
                logger.warning("Noting a use failed: %s", exc)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def _attempt(
        self,
        method: str,
        url: str,
        *,
        params: Any,
        json: Any,
        data: Any,
        headers: dict[str, str],
        idempotent: bool,
        use_auth: bool,
    ) -> requests.Response:
        """One attempt, plus one immediate re-send after re-authenticating on a 401."""
        for reauthenticated in (False, True):
            self._throttle(method, url)
            attempt_headers = dict(headers)
            used = self.auth.apply(attempt_headers) if (self.auth and use_auth) else None
            response = self._send(method, url, params, json, data, attempt_headers, idempotent)
            if response.status_code == 401 and self.auth and use_auth and not reauthenticated:
                logger.info("401 from %s: re-authenticating once", self.redact.text(url))
                self.auth.on_unauthorized(used)
                continue
            return self._check(response, idempotent)
        raise AssertionError("unreachable")

    def _throttle(self, method: str = "GET", url: str = "") -> None:
        cfg = self.config
        if not (self.limiter and cfg.rate_limit_key and cfg.rate_limit_per_minute):
            return
        wait = self.limiter.acquire(
            cfg.rate_limit_key,
            per_second=float(cfg.rate_limit_per_minute) / 60.0,
            burst=cfg.rate_limit_burst,
            max_wait=cfg.max_retry_seconds,
        )
        if cfg.endpoint_per_second and cfg.endpoint_of is not None:
            endpoint = cfg.endpoint_of(method, urlsplit(url).path)
            wait = max(  # both slots are held from now: the later one sets the moment
                wait,
                self.limiter.acquire(
                    f"{cfg.rate_limit_key}:{endpoint}"[:200],
                    per_second=float(cfg.endpoint_per_second),
                    burst=cfg.endpoint_burst,
                    max_wait=cfg.max_retry_seconds,
                ),
            )
        if wait > 0:
            self.sleep(wait)

    def _send(
        self,
        method: str,
        url: str,
        params: Any,
        json: Any,
        data: Any,
        headers: dict[str, str],
        idempotent: bool,
    ) -> requests.Response:
        try:
            response = self.session.request(
                method,
                url,
                params=params,
                json=json,
                data=data,
                headers=headers,
                timeout=(self.config.connect_timeout, self.config.read_timeout),
                allow_redirects=False,
                proxies=self._proxies_for(url),
            )
        except requests.RequestException as exc:
            safe_url = self.redact.text(url)
            detail = self.redact.text(f"{type(exc).__name__}: {exc}")[:BODY_SNIPPET]
            if idempotent or _never_sent(exc):
                raise Transient(f"{method} {safe_url} failed: {detail}") from None
            raise OutcomeUnknown(
                f"{method} {safe_url} may or may not have been applied: {detail}"
            ) from None
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s %s -> %s", method, self.redact.text(url), response.status_code)
        return response

    def _check(self, response: requests.Response, idempotent: bool) -> requests.Response:
        status = response.status_code
        if status < 400:
            return response
        method = response.request.method if response.request is not None else "?"
        where = f"{method} {self.redact.text(response.url or '')}"
        detail = self.error_detail(response)
        said = self.error_message(response, detail)
        message = f"{where} answered {status}: {said}"
        error = self._error_for(response, status, message, detail, idempotent)
        error.remote_message = said
        raise error

    def _error_for(
        self, response: requests.Response, status: int, message: str, detail: Any, idempotent: bool
    ) -> ApiError:
        """The typed error for a refused request (not raised)."""
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        mapped = self.error_map.get(status)
        if mapped is RateLimited:
            if retry_after and self.limiter and self.config.rate_limit_key:
                self.limiter.penalize(self.config.rate_limit_key, seconds=retry_after)
            return RateLimited(message, status=status, detail=detail, retry_after=retry_after)
        if mapped is not None:
            return mapped(message, status=status, detail=detail, retry_after=retry_after)
        if status in (401, 403):
            return AuthFailed(message, status=status, detail=detail)
        if status >= 500:
            if idempotent or status in NOT_APPLIED_STATUSES:
                error = Transient(message, status=status, detail=detail, retry_after=retry_after)
                error.retryable = status in RETRY_STATUSES  # a plain 500 is not retried
                return error
            return OutcomeUnknown(message, status=status, detail=detail)
        if status == 404:
            return NotFound(message, status=status, detail=detail)
        return Rejected(message, status=status, detail=detail)

    # -- hooks a provider may override ------------------------------------------------------

    def error_detail(self, response: requests.Response) -> Any:
        """The redacted error body (JSON when it is JSON)."""
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text[:BODY_SNIPPET]
        return self.redact(body)

    def error_message(self, response: requests.Response, detail: Any) -> str:
        """A short human message from an error body: one object, or a list of them (Cin7's
        ``[{"Exception": …}]``, Wise's ``{"errors": [{"message": …}]}``)."""
        if isinstance(detail, dict) and isinstance(detail.get("errors"), list):
            detail = detail["errors"]
        items = detail if isinstance(detail, list) else [detail]
        messages = [m for m in (self._one_message(item) for item in items) if m]
        if messages:
            return "; ".join(dict.fromkeys(messages))[:BODY_SNIPPET]
        return str(detail)[:BODY_SNIPPET] if detail else response.reason or "error"

    @staticmethod
    def _one_message(item: Any) -> str:
        if not isinstance(item, dict):
            return ""
        for key in ("message", "error_description", "errorMessage", "error", "Exception"):
            value = item.get(key)
            if isinstance(value, dict):
                value = value.get("message") or value.get("code")
            if value:
                path = item.get("path")  # the field an error names (Wise: "path": "IBAN")
                if isinstance(path, str) and path and path not in str(value):
                    return f"{value} (field {path[:80]})"
                return str(value)
        return ""

    # -- retry policy -----------------------------------------------------------------------

    def _wait(self, retry_state: tenacity.RetryCallState) -> float:
        """Retry-After when the remote gave one, else full jitter: U(0, min(cap, base·2ⁿ))."""
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, ApiError) and exc.retry_after is not None:
            return exc.retry_after
        ceiling = min(
            self.config.backoff_cap,
            self.config.backoff_base * (2 ** (retry_state.attempt_number - 1)),
        )
        return random.uniform(0, ceiling)

    def _log_retry(self, method: str, url: str, retry_state: tenacity.RetryCallState) -> None:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        logger.warning(
            "%s %s attempt %d failed (%s); retrying in %.2fs",
            method,
            self.redact.text(url),
            retry_state.attempt_number,
            self.redact.text(str(exc)),
            retry_state.upcoming_sleep,
        )
