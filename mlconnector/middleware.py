"""A database out of reach (a restart, a failover) is a 503 with a plain page, not a 500.

The admin's pages and the webhook edge need the database for nearly everything; while it is
away for a few seconds the honest answer is "try again shortly", with ``Retry-After``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse

logger = logging.getLogger(__name__)

PAGE = (
    "<!doctype html><title>ml-connector: back shortly</title>"
    "<h1>The database cannot be reached right now</h1>"
    "<p>Nothing was lost. Try again in a minute; if it lasts, tell whoever runs ml-connector.</p>"
)


class DatabaseUnavailable:
    """Answers 503 when a view meets a lost database connection."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        logger.error(
            "%s %s: the database cannot be reached (%s)", request.method, request.path, exception
        )
        response = HttpResponse(PAGE, status=503)
        response["Retry-After"] = "30"
        return response
