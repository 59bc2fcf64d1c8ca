"""A real django-q2 cluster (a separate process) runs an integration from its schedule.

The broker is the one the deployment uses: the ORM broker on SQLite, Redis when REDIS_URL is set.
django-q2's own ``scheduler()`` turns the due Schedule into a queued task here (the cluster's
sentinel does the same, but only every ~30 s), and the separate worker process executes it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection
from django_q.brokers import get_broker
from django_q.conf import Conf
from django_q.models import Schedule
from django_q.scheduler import scheduler

from audit.models import AuditRecord, PostingLedger
from syncs.models import FieldMapping, Integration, SyncRun

ROOT = Path(__file__).resolve().parents[2]


def start_worker(*command: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings_worker",
        "MLC_TEST_DB_NAME": str(connection.settings_dict["NAME"]),
    }
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), *(command or ("qcluster",))],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def stop_worker(worker: subprocess.Popen) -> str:
    worker.send_signal(signal.SIGTERM)  # the cluster's main process stops its own children
    try:
        out = worker.communicate(timeout=20)[0]
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        out = worker.communicate()[0]
    return out.decode(errors="replace")[-3000:]


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(90)
def test_a_qcluster_runs_the_integration_from_its_schedule(
    integration: Integration, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [
        {
            "id": f"ch_{n}",
            "ts": f"2026-11-0{n}",
            "invoice": f"I{n}",
            "amount_cents": 100 * n,
            "account": "4000",
        }
        for n in range(1, 4)
    ]
    FieldMapping.objects.create(
        integration=integration, kind="gl_account", source_value="4000", target_value="1930"
    )
    integration.settings = {"rows": rows}
    integration.schedule_type = Integration.ScheduleType.INTERVAL
    integration.interval_minutes = 60
    integration.save()  # the on_commit hook creates the django-q2 Schedule, due now
    runs = Schedule.objects.filter(func="syncs.tasks.run_integration")
    assert runs.count() == 1

    monkeypatch.setattr(Conf, "SYNC", False)  # enqueue on the real broker, do not run inline
    scheduler(broker=get_broker())
    assert runs.get().task, "django-q2 created no task from the schedule"

    worker = start_worker()
    try:
        run = None
        deadline = time.monotonic() + 45
        while run is None and time.monotonic() < deadline:
            time.sleep(0.3)
            run = SyncRun.objects.filter(integration=integration).exclude(status="running").first()
    finally:
        output = stop_worker(worker)
    assert run is not None, f"the worker never ran the integration:\n{output}"
    assert (run.trigger, run.status, run.synced) == ("schedule", "succeeded", 3), output
    assert AuditRecord.objects.filter(run=run, seen_via="schedule").count() == 3
    assert PostingLedger.objects.filter(state="confirmed").count() == 3


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(120)
def test_sigterm_stops_the_worker_within_its_grace_and_leaves_no_run_running(
    integration: Integration, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django_q.tasks import async_task

    FieldMapping.objects.create(
        integration=integration, kind="gl_account", source_value="4000", target_value="1930"
    )
    slow = {"id": "ch_1", "ts": "2026-11-01", "invoice": "I1", "amount_cents": 100}
    integration.settings = {"rows": [{**slow, "account": "4000", "sleep": 120}]}
    integration.save()
    monkeypatch.setattr(Conf, "SYNC", False)
    async_task("syncs.tasks.run_integration", integration.pk, "manual", "test")
    worker = start_worker("worker", "--grace", "2")
    try:
        deadline = time.monotonic() + 60
        while not SyncRun.objects.filter(status="running").exists():
            assert time.monotonic() < deadline and worker.poll() is None, "the run never started"
            time.sleep(0.3)
        asked = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        output = worker.communicate(timeout=30)[0].decode(errors="replace")
        took = time.monotonic() - asked
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
    assert worker.returncode == 0, output[-2000:]
    assert took < 15, f"stopping took {took:.1f}s"
    run = SyncRun.objects.get()
    assert run.status == "interrupted" and "was stopped" in run.error_summary
    assert "1 run(s) closed as interrupted" in output
    assert alive_in_group(worker.pid) == [], "processes of the cluster were left running"


def alive_in_group(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group, read from /proc."""
    time.sleep(0.5)  # a killed process needs a moment to be gone
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, group = fields[0], int(fields[2])
        if group == pgid and state != "Z":
            alive.append(int(stat.parent.name))
    return alive
