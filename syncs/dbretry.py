"""Database writes that outlive a database restart.

A worker keeps its connection between queries; when PostgreSQL restarts (``pg_ctl restart -m
fast``, a failover) that connection is dead, and every later query on it fails although the
server is back a few seconds later.  ``with_reconnect`` drops the dead connection and tries the
write again on a fresh one, waiting with a doubling delay for up to ``budget`` seconds, so a
live run records its records and its end instead of being closed later as interrupted.

Only a write that is whole on its own is retried, outside any transaction of the caller's (a
failed transaction was rolled back by the server, so nothing of it stands).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from django import db

logger = logging.getLogger(__name__)

T = TypeVar("T")

LOST = (db.OperationalError, db.InterfaceError)


def drop_connection() -> None:
    """Close this thread's connection (dead or not): the next query opens a new one."""
    try:
        db.connection.close()
    except db.Error:
        logger.debug("Closing a dead database connection raised", exc_info=True)


def with_reconnect(fn: Callable[[], T], *, what: str, budget: float = 90.0) -> T:
    """``fn()``, again on a new connection while the database is out of reach."""
    deadline = time.monotonic() + budget
    delay = 0.5
    while True:
        try:
            return fn()
        except LOST as exc:
            if db.connection.in_atomic_block or time.monotonic() + delay > deadline:
                raise
            logger.warning("%s: the database connection was lost (%s); reconnecting", what, exc)
            drop_connection()
            time.sleep(delay)
            delay = min(delay * 2, 8.0)
