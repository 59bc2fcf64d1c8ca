"""The engine under crashes and lost answers, with real worker processes on PostgreSQL + Redis.

Three ``manage.py worker`` clusters take the tasks; the CloudSuite and Stripe simulators serve
from this process and lose the answer to a share of every write step (M3 receipt head, line,
fee and control; Stripe customer, invoice, item and finalize); whole clusters are SIGKILLed and
restarted while customers, invoices and payments sync; the reaper runs as its schedule would.
Afterwards: every CloudSuite customer and invoice is in Stripe exactly once, every Stripe
payment is exactly one receipt in CloudSuite with exactly one fee, no run is left running and
no webhook event unprocessed.

Then Redis is taken away under load (a Redis of the test's own, stopped and started again
empty): every webhook is still answered 2xx, a *Run now* asked for meanwhile runs once Redis is
back, no record or run fails for it, and every payment is posted exactly once.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django_q.conf import Conf
from django_q.tasks import async_task

from audit.models import AuditRecord
from connections.sandbox.base import Served
from connections.sandbox.m3 import M3Simulator
from connections.sandbox.stripe import StripeSimulator
from syncs.models import FieldMapping, Integration, SyncRun, WebhookEvent
from syncs.services import engine_reap, integration_run, webhook_process
from tests.conftest import free_port, requires_postgres
from tests.sandbox_fixtures import connect

ROOT = Path(__file__).resolve().parent.parent
CHAOS_SECONDS = 40
WORKER_ENV = {"HEARTBEAT_SECONDS": "1", "RUN_STALE_SECONDS": "4", "LEDGER_LEASE_SECONDS": "5"}
M3_WRITES = ("AddBatchHead", "AddBatchLine", "AddBatchCharge", "ControlBatch")
STRIPE_WRITES = ("POST /v1/customers", "POST /v1/invoices", "POST /v1/invoiceitems")

pytestmark = [requires_postgres, pytest.mark.fault, pytest.mark.timeout(420)]


def start_cluster(**extra_env: str) -> subprocess.Popen:
    env = {
        **os.environ,
        **WORKER_ENV,
        **extra_env,
        "DJANGO_SETTINGS_MODULE": "tests.settings_worker",
        "MLC_TEST_DB_NAME": str(connection.settings_dict["NAME"]),
    }
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "worker", "--grace", "1"],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def kill(cluster: subprocess.Popen) -> None:
    try:
        os.killpg(cluster.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    cluster.wait(timeout=30)


def lose_answers(m3: M3Simulator, stripe: StripeSimulator, rng: random.Random) -> None:
    for step in M3_WRITES:
        m3.faults.add("lose_response", match=f"ARS040MI/{step}", count=rng.randint(1, 2))
    for step in STRIPE_WRITES:
        stripe.faults.add("lose_response", match=step, count=rng.randint(1, 2))


@pytest.mark.django_db(transaction=True)
def test_crashes_and_lost_answers_leave_nothing_missing_doubled_or_stuck(
    live_server: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.MLC = {
        **settings.MLC,
        "RUN_STALE_SECONDS": 4,
        "LEDGER_LEASE_SECONDS": 5,
        "LEDGER_BUSY_WAIT_SECONDS": 2,
        "EVENT_REQUEUE_SECONDS": 3,
    }
    rng = random.Random(20261122)
    m3_served, stripe_served = Served(M3Simulator()).start(), Served(StripeSimulator()).start()
    m3: M3Simulator = m3_served.app  # type: ignore[assignment]
    stripe: StripeSimulator = stripe_served.app  # type: ignore[assignment]
    m3.seed(invoices=30, customers=10)
    fast = {"rate_limit_per_minute": 600_000, "max_retry_seconds": 10, "read_timeout": 5}
    m3_conn = connect(m3, m3_served.url, slug="m3", name="CloudSuite", **fast)
    stripe_conn = connect(stripe, stripe_served.url, slug="stripe", name="Stripe", **fast)
    flows = {
        "customers": ("m3_stripe.customers", m3_conn, stripe_conn),
        "invoices": ("m3_stripe.invoices", m3_conn, stripe_conn),
        "payments": ("stripe_m3.payments", stripe_conn, m3_conn),
    }
    integrations = {
        name: Integration.objects.create(
            name=name, slug=name, flow=flow, source=source, target=target
        )
        for name, (flow, source, target) in flows.items()
    }
    payments = integrations["payments"]
    for kind, value, code in (
        ("gl_account", "stripe_receipts", "1930"),
        ("charge_code", "stripe_fees", "6570"),
    ):
        FieldMapping.objects.create(
            integration=payments, kind=kind, source_value=value, target_value=code
        )
    stripe.webhooks.endpoints.append(
        {
            "url": f"{live_server.url}/webhooks/stripe/{stripe_conn.slug}/",
            "secret": stripe_conn.credentials["webhook_secret"],
        }
    )
    monkeypatch.setattr(Conf, "SYNC", False)  # tasks go to the real broker, for the workers

    clusters = [start_cluster() for _ in range(3)]
    kills = 0
    try:
        started = time.monotonic()

        def enough() -> bool:  # long enough, and the workers have handled payments
            webhook_runs = SyncRun.objects.filter(trigger="webhook", synced__gt=0).count()
            return time.monotonic() - started > CHAOS_SECONDS and webhook_runs >= 5

        while not enough() and time.monotonic() - started < 3 * CHAOS_SECONDS:
            lose_answers(m3, stripe, rng)
            for integration in integrations.values():
                async_task("syncs.tasks.run_integration", integration.pk, "schedule")
            stripe.pay_random_open_invoices(0.3, rng)  # webhooks → the live server → workers
            time.sleep(rng.uniform(1.5, 3))
            victim = rng.randrange(len(clusters))
            if rng.random() < 0.5:
                kill(clusters[victim])  # SIGKILL, mid-task as likely as not
                kills += 1
                clusters[victim] = start_cluster()
            engine_reap()
    finally:
        for cluster in clusters:
            kill(cluster)
    assert kills >= 3
    by_workers = SyncRun.objects.exclude(worker__endswith=f":{os.getpid()}")
    chaos = {
        "runs by workers": by_workers.exclude(trigger="webhook").count(),
        "webhook runs by workers": by_workers.filter(trigger="webhook").count(),
        "runs interrupted": SyncRun.objects.filter(status="interrupted").count(),
        "M3 answers lost": m3.faults.taken.get("lose_response", 0),
        "Stripe answers lost": stripe.faults.taken.get("lose_response", 0),
        "clusters killed": kills,
    }
    print("chaos:", chaos)
    assert chaos["runs by workers"] >= 5 and chaos["webhook runs by workers"] >= 1, chaos
    assert chaos["M3 answers lost"] >= 4 and chaos["Stripe answers lost"] >= 4, chaos

    # Settle, as the schedules and the reaper would: faults off, everything read again.
    m3.faults.clear()
    stripe.faults.clear()
    monkeypatch.setattr(Conf, "SYNC", True)
    time.sleep(6)  # leases and heartbeats of the killed workers run out
    for _ in range(3):
        engine_reap()
        for event in WebhookEvent.objects.filter(processed=False):
            webhook_process(event=event)
        for name in ("customers", "invoices", "payments"):
            integration_run(integration=Integration.objects.get(slug=name), trigger="schedule")
    engine_reap()

    # Every CloudSuite customer and open invoice is in Stripe exactly once.
    stripe_customers = Counter(
        c["metadata"].get("m3_customer") for c in stripe.objects["customer"].values()
    )
    assert set(stripe_customers) == set(m3.state.customers)
    assert max(stripe_customers.values()) == 1, stripe_customers
    stripe_invoices = Counter(
        i["metadata"]["m3_invoice"] for i in stripe.objects["invoice"].values()
    )
    m3_invoices = {e["CINO"] for e in m3.state.ledger if e["TRCD"] == 10}
    assert set(stripe_invoices) == m3_invoices and max(stripe_invoices.values()) == 1
    # Every Stripe payment is exactly one controlled receipt with exactly one fee.
    paid = {
        i["metadata"]["m3_invoice"]: i
        for i in stripe.objects["invoice"].values()
        if i["status"] == "paid"
    }
    assert paid, "no payment happened during the run"
    receipts = Counter(r["CINO"] for r in m3.state.receipts())
    assert set(receipts) == set(paid) and max(receipts.values()) == 1, receipts
    controlled = [b for b in m3.state.batches.values() if b["status"] == "updated"]
    assert len(controlled) == len(paid)
    fees = [c for b in controlled for c in b["charges"]]
    assert len(fees) == len(paid)  # one fee per receipt, never two
    for batch in controlled:
        (line,) = batch["lines"].values()
        invoice = paid[line["CINO"]]
        assert line["PYAM"] == Decimal(invoice["amount_paid"]) / 100
    # Nothing stuck.
    assert not SyncRun.objects.filter(status="running").exists()
    assert not WebhookEvent.objects.filter(processed=False).exists()
    print(
        "outcome:",
        {
            "payments": len(paid),
            "receipts": sum(receipts.values()),
            "fees": len(fees),
            "batches left unposted": len(m3.state.batches) - len(controlled),
        },
    )
    m3_served.stop()
    stripe_served.stop()


def _redis_server(port: int) -> subprocess.Popen:
    """A Redis of the test's own (empty, no persistence), so the suite's Redis is never
    touched; waits until it answers."""
    import redis

    server = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            if client.ping():
                return server
        except redis.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


@pytest.mark.django_db(transaction=True)
def test_redis_taken_away_loses_no_request_fails_no_record_and_answers_no_webhook_with_500(
    live_server: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis stopped under load and back empty: the queue loses what it held. Every webhook is
    still answered 2xx, every payment posted once, every Run now a person asked for runs."""
    import redis
    from django_q.brokers.redis_broker import Redis as RedisBroker

    from syncs import services
    from syncs.models import WorkRequest

    if not shutil.which("redis-server"):
        pytest.skip("needs redis-server")
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    server = _redis_server(port)
    settings.MLC = {**settings.MLC, "EVENT_REQUEUE_SECONDS": 2, "REQUEST_REQUEUE_SECONDS": 2}
    rng = random.Random(20261202)
    m3_served, stripe_served = Served(M3Simulator()).start(), Served(StripeSimulator()).start()
    m3: M3Simulator = m3_served.app  # type: ignore[assignment]
    stripe: StripeSimulator = stripe_served.app  # type: ignore[assignment]
    m3.seed(invoices=16, customers=6)
    fast = {"rate_limit_per_minute": 600_000, "max_retry_seconds": 10, "read_timeout": 5}
    m3_conn = connect(m3, m3_served.url, slug="m3", name="CloudSuite", **fast)
    stripe_conn = connect(stripe, stripe_served.url, slug="stripe", name="Stripe", **fast)
    made = {
        name: Integration.objects.create(name=name, slug=name, flow=flow, source=s, target=t)
        for name, flow, s, t in (
            ("customers", "m3_stripe.customers", m3_conn, stripe_conn),
            ("invoices", "m3_stripe.invoices", m3_conn, stripe_conn),
            ("payments", "stripe_m3.payments", stripe_conn, m3_conn),
        )
    }
    for kind, value, code in (
        ("gl_account", "stripe_receipts", "1930"),
        ("charge_code", "stripe_fees", "6570"),
    ):
        FieldMapping.objects.create(
            integration=made["payments"], kind=kind, source_value=value, target_value=code
        )
    for name in ("customers", "invoices"):
        integration_run(integration=made[name], trigger="manual")
    stripe.webhooks.endpoints.append(
        {
            "url": f"{live_server.url}/webhooks/stripe/{stripe_conn.slug}/",
            "secret": stripe_conn.credentials["webhook_secret"],
        }
    )
    broker = RedisBroker(list_key=Conf.PREFIX)
    broker.connection = redis.Redis.from_url(url)
    monkeypatch.setattr(services, "_broker", lambda: broker)  # this process queues there too
    monkeypatch.setattr(Conf, "SYNC", False)
    clusters = [start_cluster(REDIS_URL=url) for _ in range(2)]
    asked: list[bool | None] = []
    try:
        stripe.pay_random_open_invoices(0.3, rng)
        time.sleep(3)
        server.terminate()  # Redis goes away under load
        server.wait(timeout=10)
        stripe.pay_random_open_invoices(0.4, rng)
        for name in ("payments", "invoices"):
            asked.append(
                services.integration_enqueue_run(integration=made[name], requested_by="rita")
            )
        time.sleep(6)
        server = _redis_server(port)  # back, and empty: whatever it held is gone
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            engine_reap()
            unfinished = WorkRequest.objects.filter(finished_at=None).count()
            pending = WebhookEvent.objects.filter(processed=False).count()
            if not unfinished and not pending and len(stripe.webhooks.delivered) >= 1:
                break
            time.sleep(2)
    finally:
        for cluster in clusters:
            kill(cluster)
        server.terminate()
        server.wait(timeout=10)
    answers = Counter(status for _, status in stripe.webhooks.delivered)
    print("deliveries:", dict(answers), "run now while Redis was away:", asked)
    assert answers and set(answers) == {200}, answers  # stored events are acknowledged
    assert False in asked  # the queue was out of reach when the person asked …
    assert not WorkRequest.objects.filter(finished_at=None).exists()  # … and it ran anyway
    assert SyncRun.objects.filter(requested_by="rita").count() == 2
    assert not WebhookEvent.objects.filter(processed=False).exists()
    assert not SyncRun.objects.filter(status="failed").exists()
    assert not AuditRecord.objects.filter(reason__icontains="connect").exists()
    paid = {
        i["metadata"]["m3_invoice"]
        for i in stripe.objects["invoice"].values()
        if i["status"] == "paid"
    }
    receipts = Counter(r["CINO"] for r in m3.state.receipts())
    assert paid and set(receipts) == paid and max(receipts.values()) == 1, receipts
    m3_served.stop()
    stripe_served.stop()
