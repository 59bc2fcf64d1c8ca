"""``manage.py worker``: the django-q2 worker cluster, stopped cleanly by SIGTERM or Ctrl-C.

``qcluster`` stops its cluster from inside its signal handler, which can deadlock (django-q2
issue #346: the handler waits on a lock the interrupted code holds), so a stop became a kill.
Here the handler only notes the signal; the main loop then stops the cluster from ordinary code,
gives runs in progress ``WORKER_STOP_SECONDS`` to finish, kills whatever is left, and closes the
runs of the processes it stopped as interrupted — so a stop never leaves a run "running".
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from syncs.run.heartbeat import worker_name
from syncs.services import runs_interrupt

logger = logging.getLogger(__name__)


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (Linux /proc; empty elsewhere)."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        current = todo.pop()
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                if child not in found:
                    found.add(child)
                    todo.append(child)
    return found


class Command(BaseCommand):
    help = "Run a django-q2 worker cluster that stops cleanly (use instead of qcluster)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--grace",
            type=float,
            default=float(settings.MLC["WORKER_STOP_SECONDS"]),
            help="Seconds runs in progress get to finish after a stop is asked for.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from django_q.cluster import Cluster

        asked: list[int] = []
        cluster = Cluster()  # installs its own handlers, which are replaced here

        def note(signum: int, _frame: Any) -> None:
            asked.append(signum)  # nothing else: no lock may be taken in a signal handler

        signal.signal(signal.SIGTERM, note)
        signal.signal(signal.SIGINT, note)
        cluster.start()
        seen: set[int] = set()
        last_look = 0.0
        while not asked and cluster.sentinel.is_alive():
            if time.monotonic() - last_look > 2:
                seen |= descendants(os.getpid())
                last_look = time.monotonic()
            time.sleep(0.2)
        seen |= descendants(os.getpid())
        self.stdout.write("Stopping the worker cluster…")
        stopper = threading.Thread(target=cluster.stop, daemon=True, name="cluster-stop")
        stopper.start()
        stopper.join(options["grace"])
        if stopper.is_alive():
            left = descendants(os.getpid())
            logger.warning(
                "Cluster still busy after %ss: stopping %d process(es)", options["grace"], len(left)
            )
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue
        closed = runs_interrupt(workers=[worker_name(pid) for pid in seen | {os.getpid()}])
        self.stdout.write(f"Worker cluster stopped ({closed} run(s) closed as interrupted).")
