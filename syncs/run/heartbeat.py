"""A live run's heartbeat, and the names runs record of the worker that runs them."""

from __future__ import annotations

import logging
import os
import socket
import threading

from django import db
from django.conf import settings
from django.utils import timezone

from syncs.dbretry import drop_connection
from syncs.models import SyncRun

logger = logging.getLogger(__name__)


class Heartbeat:
    """Keeps a run's heartbeat fresh from a thread while the run is alive, so a long read is
    never mistaken for a dead worker, and a dead worker's run is recognised within seconds.  A
    part of a split run keeps its parent's heartbeat fresh too: the parent waits for its parts
    without a worker of its own."""

    def __init__(self, run_id: int, parent_id: int | None = None) -> None:
        self.run_id = run_id
        self.ids = [run_id] if parent_id is None else [run_id, parent_id]
        self.every = float(settings.MLC["HEARTBEAT_SECONDS"])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name=f"heartbeat-{run_id}")
        self._thread.start()

    def _beat(self) -> None:
        try:
            while not self._stop.wait(self.every):
                try:
                    SyncRun.objects.filter(pk__in=self.ids, status=SyncRun.Status.RUNNING).update(
                        heartbeat_at=timezone.now()
                    )
                except Exception:
                    logger.warning("Heartbeat of run %s not written", self.run_id, exc_info=True)
                    drop_connection()  # a restarted database: a new connection next beat
        finally:
            db.connection.close()  # this thread's own connection

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def worker_name(pid: int | None = None) -> str:
    """This process as runs record it: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid() if pid is None else pid}"


def owner() -> str:
    return f"{worker_name()}:{threading.get_ident()}"
