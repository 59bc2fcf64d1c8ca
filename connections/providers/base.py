"""Provider base class and the explicit provider registry.

A provider speaks only its external API: one method per endpoint or domain operation, typed
errors from the shared ``ApiClient``, and ``check()`` for the admin's "Test connection".  It
never touches SyncRun, AuditRecord or the ledger.  The registry is ``providers.registry``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import requests

from connections.models import Connection
from connections.providers.http import ApiClient, Auth, ClientConfig
from connections.providers.ratelimit import get_rate_limiter
from connections.redaction import Redactor

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckResult:
    """The outcome of a connection test, safe to show a user."""

    ok: bool
    message: str
    details: list[str] = field(default_factory=list)


class Provider:
    """Base of every provider client."""

    kind: ClassVar[str]

    def __init__(
        self,
        connection: Connection,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.connection = connection
        self.redactor = Redactor(connection.secret_values())
        self.http = ApiClient(
            self.client_config(),
            auth=self.build_auth(),
            limiter=get_rate_limiter(),
            redactor=self.redactor,
            session=session,
            sleep=sleep,
            default_headers=self.default_headers(),
        )

    def client_config(self) -> ClientConfig:
        return ClientConfig.from_connection(self.connection)

    def build_auth(self) -> Auth | None:
        return None

    def default_headers(self) -> dict[str, str]:
        return {"Accept": "application/json"}

    def check(self) -> CheckResult:
        raise NotImplementedError
