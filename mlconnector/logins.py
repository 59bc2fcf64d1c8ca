"""Login throttling beyond django-axes' per-user lockout: password spraying.

axes locks a username tried from one address after ``LOGIN_FAILURE_LIMIT`` wrong passwords.
A sprayer tries a few passwords on many usernames instead and never reaches that count for
any one of them; so an address is also locked — for every username — once its wrong passwords
across all usernames reach ``LOGIN_ADDRESS_FAILURE_LIMIT`` within the cool-off time. That
limit is set well above one person's typing mistakes, so colleagues behind one office address
are not locked out by one another's slips.
"""

from __future__ import annotations

import logging
from typing import Any

from axes.attempts import get_cool_off_threshold
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_failure_limit
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Sum
from django.http import HttpRequest

logger = logging.getLogger(__name__)


class LoginThrottle(AxesDatabaseHandler):
    """axes' database handler, with the address-wide limit added to its count of failures."""

    def get_failures(self, request: HttpRequest, credentials: dict[str, Any] | None = None) -> int:
        failures = super().get_failures(request, credentials)
        address = getattr(request, "axes_ip_address", None)
        if not address:
            return failures
        from_address = (
            AccessAttempt.objects.filter(
                ip_address=address, attempt_time__gte=get_cool_off_threshold(request)
            ).aggregate(n=Sum("failures_since_start"))["n"]
            or 0
        )
        if from_address >= settings.LOGIN_ADDRESS_FAILURE_LIMIT:
            logger.warning("Logins from %s locked: %d wrong passwords", address, from_address)
            return max(failures, get_failure_limit(request, credentials))
        return failures
