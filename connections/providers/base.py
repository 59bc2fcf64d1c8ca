"""The provider base: what every system's client is, whatever its transport.

``Provider`` is transport-neutral: it knows its system (kind, label, credentials and settings
spec, what its secrets look like), tests the connection (``check``), redacts, raises the typed
error family of ``errors.py`` and, for systems that send webhooks, verifies them
(``verify_webhook`` → ``InboundEvent``).  ``HttpProvider`` puts it on the shared ``ApiClient``
(with OAuth when the system has a token grant); ``sftp.SftpProvider`` puts it on paramiko.

A provider speaks only its external API: it never touches SyncRun, AuditRecord or the ledger.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

import requests

from connections import jsonsafe, usage
from connections.providers import plain
from connections.providers.errors import ApiError
from connections.providers.http import ApiClient, Auth, ClientConfig
from connections.providers.oauth import BearerAuth, Grant, TokenManager
from connections.providers.ratelimit import get_rate_limiter
from connections.providers.spec import ConnectionSpec
from connections.redaction import Redactor

if TYPE_CHECKING:
    from connections.models import Connection

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckResult:
    """The outcome of a connection test, safe to show a user."""

    ok: bool
    message: str
    details: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class InboundEvent:
    """A verified webhook event: the system's own id for it, its type, when it happened."""

    id: str
    type: str
    occurred_at: datetime
    payload: dict[str, Any]


class WebhookRejected(Exception):
    """A webhook delivery that is not a validly signed, well-formed event of the system.

    ``message`` is what the sender is told (nothing about our secrets); ``status`` the HTTP code.
    """

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def parse_json_object(raw_body: bytes, *, what: str) -> dict[str, Any]:
    """Parse a webhook body as a JSON object that can be stored and processed safely.

    Refused (``WebhookRejected``, 400): not UTF-8, not JSON, not an object, nested too deeply,
    NUL characters or unpaired surrogates anywhere, NaN or infinite numbers.
    """
    try:
        text = raw_body.decode("utf-8")
    except UnicodeDecodeError:
        raise WebhookRejected(f"The body is not UTF-8 text, so not {what}.") from None
    if jsonsafe.too_deep(text):
        raise WebhookRejected(f"The body is nested too deeply to be {what}.")
    try:
        payload = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise WebhookRejected(f"The body is not JSON, so not {what}.") from None
    if not isinstance(payload, dict):
        raise WebhookRejected(f"The body is not a JSON object, so not {what}.")
    reason = jsonsafe.problem(payload)
    if reason:
        raise WebhookRejected(f"The body is not {what}: {reason}.")
    return payload


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def bounded_text(value: Any, *, limit: int, name: str, what: str) -> str:
    """A non-empty printable string of at most ``limit`` characters, or ``WebhookRejected``."""
    if not isinstance(value, str) or not value or len(value) > limit or not value.isprintable():
        raise WebhookRejected(f"The {name} is missing or malformed, so this is not {what}.")
    return value


class Provider:
    """Base of every system's client."""

    kind: ClassVar[str]  # the connection kind, e.g. "stripe"
    label: ClassVar[str]  # what a finance user calls the system
    short_label: ClassVar[str] = ""  # its name in a sentence ("CloudSuite"), when shorter
    # The system keeps the books (an ERP): the overview groups integrations under it and
    # totals what is posted to it.
    keeps_books: ClassVar[bool] = False
    spec: ClassVar[ConnectionSpec]
    # What this system's secrets look like: (pattern, replacement) pairs for free text, and the
    # names of payload keys whose values are secret (beyond the generic password/token/secret).
    secret_patterns: ClassVar[tuple[tuple[re.Pattern[str], str], ...]] = ()
    secret_keys: ClassVar[tuple[str, ...]] = ()
    # The largest webhook body this system sends; 0 means it sends no webhooks.
    webhook_max_bytes: ClassVar[int] = 0
    webhook_help: ClassVar[str] = ""  # where in the system the webhook URL is registered
    webhook_headers: ClassVar[tuple[str, ...]] = ()  # delivery headers worth keeping

    def __init__(self, connection: Connection, **_: Any) -> None:
        self.connection = connection
        self.redactor = Redactor(connection.secret_values())

    def check(self) -> CheckResult:
        """Test the connection: a refusal or an unreachable system is a failed result — in
        plain words, the technical text in its details, both safe to show — never an
        exception."""
        try:
            return self.probe()
        except ApiError as exc:
            # The host that failed (a token endpoint may not be the API's), else the settings'.
            tried = re.search(r"https?://[^\s/]+", exc.message)
            url = tried.group(0) if tried else str(self.connection.setting("base_url", "") or "")
            where = urlsplit(url).netloc or str(self.connection.setting("host", "") or "")
            message = plain.check_failure(
                exc,
                system=plain.system_name(self),
                where=where or "the server",
                connect_timeout=float(self.connection.setting("connect_timeout", 5.0)),
                read_timeout=float(self.connection.setting("read_timeout", 30.0)),
            )
            return CheckResult(
                False, self.redactor.text(message), [self.redactor.text(exc.message)]
            )
        finally:
            self.close()

    def note_use(self, worked: bool, message: str = "") -> None:
        """Tell the connection's status whether a call could use the system (every transport
        calls this: the HTTP core after each request, SFTP after each operation)."""
        if self.connection.pk is not None:
            usage.note(self.connection.pk, worked, self.redactor.text(message))

    def probe(self) -> CheckResult:
        """Authenticate and confirm the account can do what the integrations need."""
        raise NotImplementedError

    def verify_webhook(self, raw_body: bytes, headers: Mapping[str, str]) -> InboundEvent:
        """Verify a delivery's signature on the raw body and parse it; ``WebhookRejected`` if
        it is not a validly signed, well-formed event of this system."""
        raise WebhookRejected(f"{self.label} sends no webhooks.", status=404)

    @classmethod
    def sends_webhooks(cls) -> bool:
        return cls.webhook_max_bytes > 0

    def close(self) -> None:
        """Release connections (sessions, SSH transports)."""


class HttpProvider(Provider):
    """A provider on the shared HTTP core: timeouts, retries, shared rate limit, OAuth."""

    api_client_class: ClassVar[type[ApiClient]] = ApiClient  # a system's error shapes, if odd

    def __init__(
        self,
        connection: Connection,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(connection)
        self._sleep = sleep
        self._session = session
        self._http: ApiClient | None = None

    @property
    def http(self) -> ApiClient:
        """The HTTP client, made on first use (verifying a webhook needs none)."""
        if self._http is None:
            self._http = self.api_client_class(
                self.client_config(),
                auth=self.build_auth(),
                limiter=get_rate_limiter(),
                redactor=self.redactor,
                session=self._session,
                sleep=self._sleep,
                default_headers=self.default_headers(),
                observer=self.note_use,
            )
        return self._http

    def client_config(self) -> ClientConfig:
        return ClientConfig.from_connection(self.connection)

    def grant(self) -> Grant | None:
        """How this system hands out OAuth tokens (None: it does not use OAuth)."""
        return None

    def build_auth(self) -> Auth | None:
        grant = self.grant()
        if grant is None:
            return None
        return BearerAuth(TokenManager(self.connection, grant, sleep=self._sleep))

    def default_headers(self) -> dict[str, str]:
        return {"Accept": "application/json"}

    def close(self) -> None:
        if self._http is not None:
            self._http.session.close()
