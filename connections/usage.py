"""A connection's status from real use: each call a client makes says whether the system
answered (it worked, even when it refused the data) or could not be used (credentials refused,
unreachable, failing).  Written to the connection at most once a minute per process while
nothing changes, and at once when it turns from working to failing or back — so "Not tested"
never stands beside a connection that posted a hundred receipts, and a broken one shows
failing before anyone tests it."""

from __future__ import annotations

import logging
import threading
import time

from django.db import DatabaseError
from django.utils import timezone

logger = logging.getLogger(__name__)

QUIET_SECONDS = 60.0
_lock = threading.Lock()
_last: dict[int, tuple[bool, float]] = {}  # connection → (worked, when written, monotonic)


def note(connection_id: int, worked: bool, message: str = "") -> None:
    """Record one use of the connection (``message``: why it could not be used, redacted)."""
    from connections.models import Connection

    now = time.monotonic()
    with _lock:
        last = _last.get(connection_id)
        if last is not None and last[0] == worked and now - last[1] < QUIET_SECONDS:
            return
        _last[connection_id] = (worked, now)
    at = timezone.now()
    fields = (
        {"status": Connection.Status.OK, "last_used_at": at}
        if worked
        else {
            "status": Connection.Status.FAILING,
            "last_failed_at": at,
            "last_failure": message[:500],
        }
    )
    try:
        Connection.objects.filter(pk=connection_id).update(**fields)
    except DatabaseError as exc:  # the call's own outcome matters more than this note
        logger.warning("Could not note the use of connection %s: %s", connection_id, exc)
        with _lock:
            _last.pop(connection_id, None)


def forget() -> None:
    """Write the next use at once (tests; a connection's credentials changed)."""
    with _lock:
        _last.clear()
