"""Benchmark: CloudSuite ↔ Stripe at production volume, against the simulators.

Prints, from one run (``make bench``), and ends with a summary block of ``name: value`` lines,
each a median of alternated or repeated rounds (three by default) with default settings unless
its name says otherwise:

1. ``client_cpu_ratio`` and ``overhead_ratio`` — the connector's CPU and wall time for N
   invoices (``BENCH_INVOICES``, default 3,000), one record in flight, against a bare
   ``requests`` loop making the same HTTP calls (no ledger, audit, retries or rate limiter),
   alternated;
2. ``limit_share_at_150ms``, ``limit_share_of_budget_at_150ms``, ``limit_429_strict``,
   ``stripe_calls_per_invoice``, ``invoices_per_s_at_limits`` — 150 ms added to every Stripe
   call and the simulator strict (6,000/min for the account, 25/s for each endpoint, bursts of
   10), ``BENCH_RATE_INVOICES`` invoices (1,000) in one worker process;
3. ``limit_429_after_warmup`` — two worker processes (``manage.py sync``), each with its share of
   the customers, sharing the 6,000/min limit through Redis: the 429s after ``BENCH_WARMUP`` s;
4. ``stripe_calls_per_payment``, ``m3_requests_per_payment``, ``m3_requests_per_receipt_batch``,
   ``payments_per_s_at_limits`` — ``BENCH_PAYMENTS`` payments (500) missed by webhooks and read
   by one poll, Stripe at 150 ms and its live limits, CloudSuite at 300 ms and 300/min, the
   connections at their defaults;
5. ``memory_ratio_10x`` — peak memory syncing 10·M invoices and ten times the customers against M
   (``BENCH_MEMORY_INVOICES``, default 5,000), each size in a fresh process;
6. ``webhook_events_per_s_orm`` / ``_redis`` — signed Stripe events verified, stored, queued and
   acknowledged by the webhook view with each broker, and ``djstripe_webhook_events_per_s``,
   dj-stripe's view on the same events in its own environment (else "not measured");
7. ``cin7_calls_*`` — the Cin7 Core calls 1,000 suppliers and 500 purchase orders take, and a
   second run with nothing changed.

``month_end_minutes`` is 50,000 invoices at part 2's rate plus 50,000 payments at part 4's.
The simulators run in their own processes (``manage.py sandbox``, every one on a free port), so
the measured process holds only the connector.  ``BENCH_REDIS_URL`` (default
``redis://127.0.0.1:6379/14``) is the Redis of parts 3 and 6; without one they say so.
"""

from __future__ import annotations

import base64
import json
import os
import resource
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
N = int(os.environ.get("BENCH_INVOICES", "3000"))
OVERHEAD_ROUNDS = int(os.environ.get("BENCH_OVERHEAD_ROUNDS", "3"))
ENDPOINT_RATE = 25.0  # Stripe's default limit of each endpoint, a second (docs.stripe.com)
CUSTOMERS = int(os.environ.get("BENCH_CUSTOMERS", "500"))
LIMIT = int(os.environ.get("BENCH_RATE", "6000"))  # Stripe's live limit, per minute
LATENCY_MS = float(os.environ.get("BENCH_LATENCY_MS", "150"))
RATE_INVOICES = int(os.environ.get("BENCH_RATE_INVOICES", "1000"))
LIMIT_ROUNDS = int(os.environ.get("BENCH_LIMIT_ROUNDS", "3"))
STRICT_BURST = 10  # the simulator's burst, for the account and for each endpoint
MONTH_END = 50_000  # invoices, and payments, at month-end
IN_FLIGHT = int(os.environ.get("BENCH_IN_FLIGHT", "24"))
WARMUP = float(os.environ.get("BENCH_WARMUP", "5"))
PAYMENTS = int(os.environ.get("BENCH_PAYMENTS", "500"))
PAYMENT_ROUNDS = int(os.environ.get("BENCH_PAYMENT_ROUNDS", "3"))
M3_LATENCY_MS = float(os.environ.get("BENCH_M3_LATENCY_MS", "300"))
M3_LIMIT = int(os.environ.get("BENCH_M3_RATE", "300"))  # the CloudSuite connection's default
MEMORY_N = int(os.environ.get("BENCH_MEMORY_INVOICES", "5000"))
MEMORY_ROUNDS = int(os.environ.get("BENCH_MEMORY_ROUNDS", "3"))
EVENTS = int(os.environ.get("BENCH_EVENTS", "2000"))
WEBHOOK_ROUNDS = int(os.environ.get("BENCH_WEBHOOK_ROUNDS", "3"))
REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
CIN7_SUPPLIERS = int(os.environ.get("BENCH_CIN7_SUPPLIERS", "1000"))
CIN7_ORDERS = int(os.environ.get("BENCH_CIN7_ORDERS", "500"))
CHUNK = 50
PAGE = 500
UNLIMITED = 10**9


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sandbox:
    """``manage.py sandbox`` in a child process."""

    def __init__(self, invoices: int, customers: int) -> None:
        from connections.sandbox.server import SIMULATORS

        self.m3_port, self.stripe_port = free_port(), free_port()
        # every simulator the sandbox serves on a free port: never one a running demo holds
        others = [
            f"--port={name}={free_port()}" for name in SIMULATORS if name not in ("m3", "stripe")
        ]
        self.m3, self.stripe = (
            f"http://127.0.0.1:{self.m3_port}",
            f"http://127.0.0.1:{self.stripe_port}",
        )
        self.proc = subprocess.Popen(  # noqa: S603  (this Python, this manage.py)
            [
                sys.executable,
                str(ROOT / "manage.py"),
                "sandbox",
                "--seed",
                "--state-dir",
                "",
                "--seed-invoices",
                str(invoices),
                "--seed-customers",
                str(customers),
                f"--port=m3={self.m3_port}",
                f"--port=stripe={self.stripe_port}",
                *others,
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            try:
                requests.get(f"{self.stripe}/_sandbox/state", timeout=1)
                requests.get(f"{self.m3}/_sandbox/state", timeout=1)
                return
            except requests.RequestException:
                time.sleep(0.2)
        raise SystemExit("the sandbox did not start")

    def state(self, which: str = "stripe") -> dict[str, Any]:
        url = self.stripe if which == "stripe" else self.m3
        return requests.get(f"{url}/_sandbox/state", timeout=30).json()

    def stripe_requests(self) -> int:
        return self.state()["api_requests"]

    def conditions(self, which: str, **values: Any) -> None:
        url = self.stripe if which == "stripe" else self.m3
        requests.post(f"{url}/_sandbox/conditions", json=values, timeout=10).raise_for_status()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)


def connector_setup(
    box: Sandbox,
    suffix: str,
    *,
    stripe_limit: int,
    in_flight: int = 1,
    burst: int = 10,
    flows: tuple[str, ...] = ("m3_stripe.customers", "m3_stripe.invoices"),
    invoice_settings: tuple[dict[str, Any], ...] = ({},),
) -> dict[str, Any]:
    from connections.models import Connection
    from syncs.models import FieldMapping, Integration

    ionapi = requests.get(f"{box.m3}/_sandbox/ionapi", timeout=10).json()
    m3 = Connection(
        name=f"M3 {suffix}",
        slug=f"m3-{suffix}",
        kind="infor_m3",
        credentials=ionapi,
        settings={
            "cono": 100,
            "divi": "AAA",
            "rate_limit_per_minute": UNLIMITED,
            "read_timeout": 120,
            "max_in_flight": in_flight,
        },
    )
    stripe = Connection(
        name=f"Stripe {suffix}",
        slug=f"stripe-{suffix}",
        kind="stripe",
        credentials={"api_key": "sk_test_sandbox_0123456789abcdef"},
        settings={
            "base_url": box.stripe,
            "rate_limit_per_minute": stripe_limit,
            "rate_limit_burst": burst,
            # Stripe's limit of each endpoint (25 a second by default) binds only where the
            # account's does: a part measuring the client without limits lifts both
            **({"endpoint_rate_per_second": UNLIMITED} if stripe_limit == UNLIMITED else {}),
            "max_in_flight": in_flight,
            "read_timeout": 60,
        },
    )
    integrations: dict[str, Any] = {}
    for conn in (m3, stripe):
        conn.full_clean()
        conn.save()
    if stripe_limit == UNLIMITED:  # the simulator keeps Stripe's sandbox limits unless lifted
        box.conditions("stripe", rate_limit_per_minute=0, endpoint_rate_per_second=0)
    for flow in flows:
        source, target = (stripe, m3) if flow.startswith("stripe_m3") else (m3, stripe)
        shares = invoice_settings if flow == "m3_stripe.invoices" else ({},)
        for n, extra in enumerate(shares):
            key = flow if len(shares) == 1 else f"{flow}#{n}"
            integ = Integration(
                name=f"{key} {suffix}",
                slug=f"{key.replace('.', '-').replace('#', '-')}-{suffix}",
                flow=flow,
                source=source,
                target=target,
                settings=extra,
            )
            integ.full_clean()
            integ.save()
            integrations[key] = integ
            if flow == "stripe_m3.payments":
                FieldMapping.objects.create(
                    integration=integ,
                    kind="gl_account",
                    source_value="stripe_receipts",
                    target_value="1930",
                )
    return integrations


def run(integration: Any) -> Any:
    from syncs.runner import Runner

    return Runner(integration, trigger="manual").run()


def bare_loop(box: Sandbox) -> int:
    """The same HTTP calls as the invoice flow, with requests and nothing else."""
    session = requests.Session()
    ionapi = session.get(f"{box.m3}/_sandbox/ionapi", timeout=10).json()
    basic = base64.b64encode(f"{ionapi['ci']}:{ionapi['cs']}".encode()).decode()
    token = session.post(
        ionapi["pu"] + ionapi["ot"],
        timeout=30,
        headers={"Authorization": f"Basic {basic}"},
        data={"grant_type": "password", "username": ionapi["saak"], "password": ionapi["sask"]},
    ).json()
    m3 = {"Authorization": f"Bearer {token['access_token']}"}
    base = f"{ionapi['iu']}/{ionapi['ti']}/M3/m3api-rest/v2/execute"
    bulk_params = {"cono": 100, "divi": "AAA", "extendedresult": "true", "righttrim": "true"}
    calls = 1

    def bulk(program: str, transaction: str, records: list[dict[str, Any]]) -> list[Any]:
        nonlocal calls
        calls += 1
        body = {
            "program": program,
            "cono": 100,
            "maxReturnedRecords": PAGE,
            "transactions": [{"transaction": transaction, "record": r} for r in records],
        }
        answer = session.post(base, headers=m3, json=body, timeout=120, params=bulk_params)
        return [r.get("records") or [] for r in answer.json()["results"]]

    numbers, start = [], ""
    while True:  # customers by key range
        calls += 1
        page = session.get(
            f"{base}/CRS610MI/LstByNumber;maxrecs={PAGE}",
            headers=m3,
            timeout=120,
            params={"CONO": 100, "DIVI": "AAA", "CUNO": start},
        ).json()["results"][0]["records"]
        numbers += [r["CUNO"].strip() for r in page if r["CUNO"].strip() != start or not start]
        if len(page) < PAGE:
            break
        start = page[-1]["CUNO"].strip()
    entries = []
    for at in range(0, len(numbers), CHUNK):
        for records in bulk(
            "ARS200MI",
            "LstInvByDivi",
            [{"FDIV": "AAA", "TDIV": "AAA", "CUNO": n} for n in numbers[at : at + CHUNK]],
        ):
            entries += [{k: v.strip() for k, v in r.items()} for r in records]
    entries = [e for e in entries if e["TRCD"] == "10" and e["RECO"] == "0"]
    details = []
    for at in range(0, len(entries), CHUNK):
        keys = [
            {"YEA4": e["YEA4"], "JRNO": e["JRNO"], "JSNO": e["JSNO"]}
            for e in entries[at : at + CHUNK]
        ]
        details += [r[0] for r in bulk("ARS200MI", "GetInvoice", keys)]
    stripe = {"Authorization": "Bearer sk_test_sandbox_0123456789abcdef"}
    customers, after = {}, None
    while True:
        page = session.get(
            f"{box.stripe}/v1/customers",
            headers=stripe,
            timeout=30,
            params={"limit": 100, **({"starting_after": after} if after else {})},
        ).json()
        calls += 1
        customers.update({c["metadata"]["m3_customer"]: c["id"] for c in page["data"]})
        if not page["has_more"]:
            break
        after = page["data"][-1]["id"]
    due = int(time.time()) + 30 * 86400
    for entry, detail in zip(entries, details, strict=True):
        key, currency = f"bare-{entry['CINO']}", detail["CUCD"]
        total, vat = float(detail["CUAM"]), float(detail["VTAM"])
        invoice = session.post(  # the parameters the invoice flow sends, by hand
            f"{box.stripe}/v1/invoices",
            timeout=30,
            headers={**stripe, "Idempotency-Key": key + ":create"},
            data={
                "customer": customers[entry["CUNO"]],
                "currency": currency.lower(),
                "collection_method": "send_invoice",
                "due_date": due,
                "auto_advance": "false",
                "description": f"CloudSuite invoice {entry['CINO']}",
                "metadata[m3_invoice]": entry["CINO"],
                "metadata[m3_invoice_year]": entry["INYR"],
                "metadata[m3_customer]": entry["CUNO"],
                "metadata[m3_division]": entry["DIVI"],
                "metadata[m3_amount]": detail["CUAM"],
                "metadata[m3_currency]": currency,
                "metadata[m3_due_date]": entry["DUDT"],
            },
        ).json()
        lines = {}
        amounts = (round((total - vat) * 100), round(vat * 100))
        texts = (f"Invoice {entry['CINO']}", "VAT")
        for n, (amount, text) in enumerate(zip(amounts, texts, strict=True)):
            lines[f"lines[{n}][amount]"] = amount
            lines[f"lines[{n}][description]"] = text
            lines[f"lines[{n}][metadata][line]"] = n + 1
        session.post(
            f"{box.stripe}/v1/invoices/{invoice['id']}/add_lines",
            timeout=30,
            headers={**stripe, "Idempotency-Key": key + ":lines"},
            data=lines,
        )
        session.post(
            f"{box.stripe}/v1/invoices/{invoice['id']}/finalize",
            timeout=30,
            headers={**stripe, "Idempotency-Key": key + ":finalize"},
        )
        calls += 3
    return calls


def part_overhead(summary: dict[str, Any]) -> None:
    """The connector against a bare ``requests`` loop making the same calls, alternated
    ``OVERHEAD_ROUNDS`` times: wall time, and the CPU time of this process (the simulators run
    in a child process, so their CPU is not in it) — the client's own cost, which a wall-time
    ratio dilutes with the simulator's."""
    box = Sandbox(N, CUSTOMERS)
    walls: list[tuple[float, float]] = []
    cpus: list[tuple[float, float]] = []
    stripe_calls = bare_calls = 0
    result: Any = None
    try:
        for round_ in range(OVERHEAD_ROUNDS):
            flows = connector_setup(box, f"fast{round_}", stripe_limit=UNLIMITED)
            run(flows["m3_stripe.customers"])
            requests.post(f"{box.stripe}/_sandbox/reset", json={"keep": ["customer"]}, timeout=30)
            before = box.stripe_requests()
            started, cpu = time.perf_counter(), time.process_time()
            result = run(flows["m3_stripe.invoices"])
            connector = (time.perf_counter() - started, time.process_time() - cpu)
            stripe_calls = box.stripe_requests() - before
            requests.post(f"{box.stripe}/_sandbox/reset", json={"keep": ["customer"]}, timeout=30)
            started, cpu = time.perf_counter(), time.process_time()
            bare_calls = bare_loop(box)
            bare = (time.perf_counter() - started, time.process_time() - cpu)
            walls.append((connector[0], bare[0]))
            cpus.append((connector[1], bare[1]))
    finally:
        box.stop()
    rounds = ", ".join(f"{c:.2f}/{b:.2f}" for c, b in walls)
    wall = statistics.median(c / b for c, b in walls)
    cpu_ratio = statistics.median(c / b for c, b in cpus)
    connector_wall = statistics.median(c for c, _ in walls)
    bare_wall = statistics.median(b for _, b in walls)
    connector_cpu = statistics.median(c for c, _ in cpus)
    bare_cpu = statistics.median(b for _, b in cpus)
    print(
        f"1. Local cost: {N} invoices, one in flight, no added latency "
        f"(medians of {OVERHEAD_ROUNDS} alternated rounds)"
    )
    print(
        f"  connector: {connector_wall:8.2f} s wall, {connector_cpu:6.2f} s CPU  "
        f"({result.synced} synced, {result.failed} failed, {result.flagged} flagged; "
        f"{stripe_calls} Stripe requests)"
    )
    print(
        f"  bare loop: {bare_wall:8.2f} s wall, {bare_cpu:6.2f} s CPU  "
        f"({bare_calls} HTTP requests, no bookkeeping)"
    )
    print(
        f"  per invoice: connector {1000 * connector_cpu / N:.2f} ms CPU, bare "
        f"{1000 * bare_cpu / N:.2f} ms; CPU ratio {cpu_ratio:.2f}, wall ratio {wall:.2f}"
    )
    print(f"  each round, connector/bare wall seconds: {rounds}")
    summary["overhead_ratio"] = f"{wall:.2f}"
    summary["client_cpu_ratio"] = f"{cpu_ratio:.2f}"


def medians(rounds: list[dict[str, float]]) -> dict[str, float]:
    """Each figure's median over the rounds."""
    return {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}


def limit_round(n: int) -> dict[str, float]:
    """One round of part 2 in a fresh sandbox: Stripe strict (its live limits, a burst of 10)."""
    box = Sandbox(RATE_INVOICES, CUSTOMERS)
    try:
        flows = connector_setup(box, f"limited{n}", stripe_limit=LIMIT, in_flight=IN_FLIGHT)
        run(flows["m3_stripe.customers"])
        box.conditions(
            "stripe",
            latency_ms=LATENCY_MS,
            rate_limit_per_minute=LIMIT,
            rate_limit_burst=STRICT_BURST,
            endpoint_rate_per_second=ENDPOINT_RATE,  # Stripe's limit of each endpoint too
            endpoint_burst=STRICT_BURST,
        )
        opening = box.state()
        before, ops_before = opening["api_requests"], opening.get("by_operation", {})
        refused_before = opening["rate_limited"] + opening.get("endpoint_rate_limited", 0)
        started = time.perf_counter()
        result = run(flows["m3_stripe.invoices"])
        elapsed = time.perf_counter() - started
        state = box.state()
    finally:
        box.stop()
    calls = state["api_requests"] - before
    achieved = calls / elapsed * 60
    # The connector's budget: these calls can go no faster than the account's limit allows in
    # all, nor than Stripe's limit of each endpoint allows for the busiest endpoint.
    per_op = {op: n - ops_before.get(op, 0) for op, n in (state.get("by_operation") or {}).items()}
    busiest = max(per_op.values(), default=0)
    fastest = max(calls / (LIMIT / 60), busiest / ENDPOINT_RATE)  # seconds, at best
    budget = calls / fastest * 60 if fastest else float(LIMIT)
    return {
        "synced": result.synced,
        "seconds": elapsed,
        "calls": calls,
        "share": 100 * achieved / LIMIT,
        "budget_share": 100 * achieved / budget,
        "budget": budget,
        "busiest": busiest,
        "refused": state["rate_limited"] + state.get("endpoint_rate_limited", 0) - refused_before,
        "per_s": result.synced / elapsed,
        "concurrent": state["max_concurrent"],
    }


def part_limit(summary: dict[str, Any]) -> None:
    rounds = [limit_round(n) for n in range(LIMIT_ROUNDS)]
    med = medians(rounds)
    print(
        f"2. Stripe at {LATENCY_MS:.0f} ms a call, strict: {LIMIT}/min for the account and "
        f"{ENDPOINT_RATE:.0f}/s for each endpoint, bursts of {STRICT_BURST}; {RATE_INVOICES} "
        f"invoices, one worker process, {IN_FLIGHT} in flight (medians of {LIMIT_ROUNDS} rounds)"
    )
    print(
        f"  {med['synced']:.0f} synced in {med['seconds']:.1f} s ({med['per_s']:.1f} invoices/s): "
        f"{med['calls']:.0f} Stripe requests, {med['share']:.1f}% of the account's limit; "
        f"{med['refused']:.0f} answered 429; at most {med['concurrent']:.0f} requests at once"
    )
    print(
        f"  budget: {med['budget']:.0f}/min (the account's {LIMIT}/min, and {ENDPOINT_RATE:.0f}/s "
        f"for each endpoint: the busiest took {med['busiest']:.0f}); "
        f"{med['budget_share']:.1f}% of it"
    )
    print(f"  each round, 429s: {', '.join(str(int(r['refused'])) for r in rounds)}")
    summary["limit_share_at_150ms"] = f"{med['share']:.1f}"
    summary["limit_share_of_budget_at_150ms"] = f"{med['budget_share']:.1f}"
    summary["limit_429_strict"] = f"{med['refused']:.0f}"
    summary["stripe_calls_per_invoice"] = f"{med['calls'] / max(1, med['synced']):.2f}"
    summary["invoices_per_s_at_limits"] = f"{med['per_s']:.1f}"


def redis_reachable() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS, socket_connect_timeout=2).ping())
    except Exception:
        return False


def part_two_workers(summary: dict[str, Any]) -> None:
    print(
        f"3. One run split across two worker processes sharing the {LIMIT}/min limit through Redis"
    )
    if not redis_reachable():
        print(f"  not measured: no Redis at {REDIS}")
        summary["limit_429_after_warmup"] = "not measured (no Redis)"
        return
    box = Sandbox(RATE_INVOICES, CUSTOMERS)
    env = {
        **os.environ,
        "REDIS_URL": REDIS,
        "RATE_LIMIT_BACKEND": "redis",
        "Q_WORKERS": "1",
        "WORKER_STOP_SECONDS": "5",
    }
    worker = None
    try:
        flows = connector_setup(
            box,
            "shared",
            stripe_limit=LIMIT,
            in_flight=IN_FLIGHT,
            invoice_settings=({"workers": 2},),
        )
        run(flows["m3_stripe.customers"])
        box.conditions(
            "stripe",
            latency_ms=LATENCY_MS,
            rate_limit_per_minute=LIMIT,
            rate_limit_burst=max(1, LIMIT // 60),
        )
        worker = subprocess.Popen(  # noqa: S603  (a django-q2 worker: the second process)
            [sys.executable, str(ROOT / "manage.py"), "worker"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        time.sleep(3)
        before = box.stripe_requests()
        started = time.perf_counter()
        parent = subprocess.Popen(  # noqa: S603  (the run's own process takes the first part)
            [sys.executable, str(ROOT / "manage.py"), "sync", flows["m3_stripe.invoices"].slug],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(WARMUP)
        warm = box.state()["rate_limited"]
        output = parent.communicate(timeout=1800)[0].strip()
        elapsed = time.perf_counter() - started
        state = box.state()
    finally:
        if worker is not None:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(60)
        box.stop()
    from syncs.models import SyncRun

    parts = SyncRun.objects.filter(trigger=SyncRun.Trigger.PART).order_by("-pk")[:1]
    calls = state["api_requests"] - before
    after = state["rate_limited"] - warm
    print(f"  {output}")
    for part in parts:
        print(f"  its other part, run #{part.pk} by {part.worker}: {part.synced} synced")
    print(
        f"  {calls} Stripe requests in {elapsed:.1f} s = {calls / elapsed * 60:.0f}/min "
        f"({100 * calls / elapsed * 60 / LIMIT:.1f}% of the limit); 429s: {warm} in the first "
        f"{WARMUP:.0f} s, {after} after"
    )
    summary["limit_429_after_warmup"] = str(after)


def default_settings(*connections: Any) -> None:
    """Back to the connections' defaults (the bench set them up unlimited to seed fast)."""
    for conn in connections:
        conn.refresh_from_db()
        conn.settings = {
            k: v
            for k, v in conn.settings.items()
            if k not in ("rate_limit_per_minute", "rate_limit_burst", "endpoint_rate_per_second")
            and k not in ("max_in_flight", "read_timeout")
        }
        conn.save()


def open_invoices(box: Sandbox) -> list[dict[str, Any]]:
    invoices: list[dict[str, Any]] = []
    while True:
        page = requests.get(
            f"{box.stripe}/v1/invoices",
            params={
                "limit": 100,
                "status": "open",
                **({"starting_after": invoices[-1]["id"]} if invoices else {}),
            },
            headers={"Authorization": "Bearer sk_test_sandbox_0123456789abcdef"},
            timeout=30,
        ).json()
        invoices += page["data"]
        if not page["has_more"]:
            return invoices


def payments_round(n: int) -> dict[str, float]:
    """One round: ``PAYMENTS`` invoices paid in Stripe while no webhook reaches the connector,
    then one poll at the published limits with the connections' default settings."""
    box = Sandbox(PAYMENTS, 50)
    try:
        flows = connector_setup(
            box,
            f"pay{n}",
            stripe_limit=UNLIMITED,
            in_flight=16,
            flows=("m3_stripe.customers", "m3_stripe.invoices", "stripe_m3.payments"),
        )
        run(flows["m3_stripe.customers"])
        run(flows["m3_stripe.invoices"])
        for invoice in open_invoices(box):
            requests.post(
                f"{box.stripe}/_sandbox/pay_invoice", json={"invoice": invoice["id"]}, timeout=30
            ).raise_for_status()
        payments = flows["stripe_m3.payments"]
        default_settings(payments.source, payments.target)
        box.conditions(
            "stripe",
            latency_ms=LATENCY_MS,
            rate_limit_per_minute=LIMIT,  # a live account: 100 a second…
            rate_limit_burst=10,
            endpoint_rate_per_second=ENDPOINT_RATE,  # …and 25 a second for each endpoint
            endpoint_burst=10,
        )
        box.conditions("m3", latency_ms=M3_LATENCY_MS, rate_limit_per_minute=M3_LIMIT)
        stripe_before, m3_before = box.state(), box.state("m3")
        started, cpu = time.perf_counter(), time.process_time()
        result = run(payments)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        stripe_after, m3_after = box.state(), box.state("m3")
    finally:
        box.stop()
    synced = max(1, result.synced)
    programs = m3_after.get("requests_by_program", {})
    receipts = programs.get("ARS040MI", 0) - m3_before.get("requests_by_program", {}).get(
        "ARS040MI", 0
    )
    ops_before = stripe_before.get("by_operation", {})
    ops = {k: v - ops_before.get(k, 0) for k, v in stripe_after.get("by_operation", {}).items()}
    print(f"  round {n + 1}, Stripe requests by endpoint: {ops}")
    return {
        "synced": result.synced,
        "failed": result.failed + result.flagged,
        "seconds": elapsed,
        "cpu": cpu,
        "stripe": (stripe_after["api_requests"] - stripe_before["api_requests"]) / synced,
        "m3": (m3_after["api_requests"] - m3_before["api_requests"]) / synced,
        "receipt_requests": receipts,
        "per_s": result.synced / elapsed,
        "refused": stripe_after["rate_limited"]
        + stripe_after.get("endpoint_rate_limited", 0)
        - stripe_before["rate_limited"]
        - stripe_before.get("endpoint_rate_limited", 0)
        + m3_after["rate_limited"]
        - m3_before["rate_limited"],
    }


def part_payments(summary: dict[str, Any]) -> None:
    rounds = [payments_round(n) for n in range(PAYMENT_ROUNDS)]
    med = medians(rounds)
    print(
        f"4. Payments: {PAYMENTS} Stripe payments a round, missed by webhooks and read by one "
        f"poll; Stripe at {LATENCY_MS:.0f} ms a call and its live limits ({LIMIT}/min, "
        f"{ENDPOINT_RATE:.0f}/s each endpoint), CloudSuite at {M3_LATENCY_MS:.0f} ms and "
        f"{M3_LIMIT}/min; default connection settings (medians of {PAYMENT_ROUNDS} rounds)"
    )
    print(
        f"  {med['synced']:.0f} receipts posted ({med['failed']:.0f} failed or flagged) in "
        f"{med['seconds']:.1f} s wall, {med['cpu']:.1f} s CPU: {med['per_s']:.1f} payments/s; "
        f"{med['stripe']:.2f} Stripe and {med['m3']:.2f} CloudSuite requests a payment "
        f"({med['receipt_requests']:.0f} ARS040MI requests); {med['refused']:.0f} answered 429"
    )
    each = ", ".join(f"{r['per_s']:.1f}" for r in rounds)
    print(f"  each round, payments/s: {each}")
    summary["stripe_calls_per_payment"] = f"{med['stripe']:.2f}"
    summary["m3_requests_per_payment"] = f"{med['m3']:.2f}"
    summary["payments_per_s_at_limits"] = f"{med['per_s']:.1f}"
    summary["m3_requests_per_receipt_batch"] = (
        f"{med['receipt_requests'] / max(1, med['synced']):.2f}"
    )


def part_cin7(summary: dict[str, Any]) -> None:
    """CloudSuite → Cin7 Core: the calls 1,000 suppliers and 500 purchase orders take, and a
    second run over the same (unchanged) records — Cin7 allows 60 calls a minute, so calls are
    the figure that counts (the simulators run unlimited here; the minutes are what the calls
    would take at the connection's 58 a minute)."""
    from datetime import date

    from connections.models import Connection
    from connections.sandbox.base import Served
    from connections.sandbox.cin7 import Cin7Simulator
    from connections.sandbox.m3 import M3Simulator
    from syncs.models import Integration

    suppliers_n, orders_n = CIN7_SUPPLIERS, CIN7_ORDERS
    m3 = M3Simulator()
    day = date.today().strftime("%Y%m%d")
    for n in range(suppliers_n):
        m3.state.put_supplier(f"S{n:05d}", SUNM=f"Supplier {n:05d}", CUCD="EUR")
    for n in range(orders_n):
        m3.state.add_purchase_order(
            f"PO{n:06d}",
            f"S{n % suppliers_n:05d}",
            "EUR",
            pudt=day,
            lines=[{"ITNO": "PAPER", "ITDS": "Paper", "ORQA": "2", "PUPR": "10.00", "VTCD": "0"}],
        )
        m3.state.add_supplier_invoice(
            f"S{n % suppliers_n:05d}", f"INV{n:06d}", "20.00", "EUR", due=day, PUNO=f"PO{n:06d}"
        )
    cin7 = Cin7Simulator(rate_limit_per_minute=None)
    cin7.put_account("429", "General expenses")
    served = [Served(m3).start(), Served(cin7).start()]
    try:
        made = []
        for sim, box in zip((m3, cin7), served, strict=True):
            values = sim.connection_values(box.url)
            conn = Connection(
                name=f"{sim.label} cin7 bench",
                slug=f"{sim.name}-cin7-bench",
                kind=values["kind"],
                credentials=values["credentials"],
                settings={**values["settings"], "rate_limit_per_minute": UNLIMITED},
            )
            conn.full_clean()
            conn.save()
            made.append(conn)
        flows = {}
        for flow, settings in (
            ("m3_cin7.suppliers", {}),
            ("m3_cin7.purchases", {"default_account": "429"}),
        ):
            integ = Integration(
                name=f"{flow} bench",
                slug=f"{flow.replace('.', '-')}-bench",
                flow=flow,
                source=made[0],
                target=made[1],
                settings=settings,
            )
            integ.full_clean()
            integ.save()
            flows[flow] = integ
        counts = []
        for flow in (
            "m3_cin7.suppliers",
            "m3_cin7.suppliers",
            "m3_cin7.purchases",
            "m3_cin7.purchases",
        ):
            before = cin7.api_requests
            result = run(flows[flow])
            counts.append((result.synced, cin7.api_requests - before))
    finally:
        for box in served:
            box.stop()
    (s_synced, s_calls), (_, s_again), (p_synced, p_calls), (_, p_again) = counts
    minutes = (s_calls + p_calls) / 58
    print(
        f"7. Cin7 Core at 60 calls a minute: {s_synced} suppliers in {s_calls} calls "
        f"(a create each, one page of up to 1,000 to match them), {p_synced} purchase orders in "
        f"{p_calls} calls (purchase, authorised order with its memo, invoice with its tax "
        "each; one page of suppliers, one of tax rules); "
        f"run again with nothing changed: {s_again} and {p_again} calls. "
        f"At 58 a minute that is {minutes:.0f} minutes of Cin7's limit; "
        f"{len(cin7.violations)} contract violations."
    )
    summary["cin7_calls_suppliers"] = f"{s_calls} for {s_synced}"
    summary["cin7_calls_purchases"] = f"{p_calls} for {p_synced}"
    summary["cin7_calls_unchanged_rerun"] = s_again + p_again


def memory_child(invoices: int, customers: int) -> None:
    """In a fresh process: sync ``customers`` customers and ``invoices`` invoices, print the
    peak RSS in KiB."""
    setup_django()
    box = Sandbox(invoices, customers)
    try:
        flows = connector_setup(box, "memory", stripe_limit=UNLIMITED, in_flight=8)
        run(flows["m3_stripe.customers"])
        result = run(flows["m3_stripe.invoices"])
    finally:
        box.stop()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"synced": result.synced, "peak_kib": peak}))


def memory_peak(invoices: int, customers: int) -> dict[str, Any]:
    started = time.perf_counter()
    out = (
        subprocess.run(  # noqa: S603
            [sys.executable, __file__, "--memory-child", str(invoices), str(customers)],
            cwd=ROOT,
            env={**os.environ, "MLC_VAR_DIR": tempfile.mkdtemp(prefix="mlc-bench-mem-")},
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    return {**json.loads(out), "seconds": time.perf_counter() - started}


def part_memory(summary: dict[str, Any]) -> None:
    """Peak memory at M invoices (and ``CUSTOMERS`` customers) against 10·M (and ten times the
    customers), each size in a fresh process, alternated ``MEMORY_ROUNDS`` times."""
    ratios = []
    for _ in range(MEMORY_ROUNDS):
        small = memory_peak(MEMORY_N, CUSTOMERS)
        large = memory_peak(10 * MEMORY_N, 10 * CUSTOMERS)
        for size, figures in ((MEMORY_N, small), (10 * MEMORY_N, large)):
            print(
                f"  {size} invoices: {figures['synced']} synced, peak RSS "
                f"{figures['peak_kib'] / 1024:.0f} MiB ({figures['seconds']:.0f} s)"
            )
        ratios.append(large["peak_kib"] / small["peak_kib"])
    ratio = statistics.median(ratios)
    print(
        f"5. Memory: peak at {10 * MEMORY_N} invoices and {10 * CUSTOMERS} customers / at "
        f"{MEMORY_N} and {CUSTOMERS} = {ratio:.2f} (median of {MEMORY_ROUNDS})"
    )
    summary["memory_ratio_10x"] = f"{ratio:.2f}"


def webhook_rate(bodies: list[str]) -> float:
    """Events per second through our webhook view (verify, store, queue for a worker, 200)."""
    from django.test import Client

    from connections.models import Connection
    from connections.sandbox.stripe import sign

    secret = "whsec_" + secrets.token_hex(12)
    conn = Connection(
        name="Stripe webhooks",
        slug=f"stripe-webhooks-{secrets.token_hex(3)}",
        kind="stripe",
        credentials={"api_key": "sk_test_sandbox_0123456789abcdef", "webhook_secret": secret},
        settings={"base_url": "http://127.0.0.1:9"},
    )
    conn.full_clean()
    conn.save()
    signed = [(body, sign(body, secret)) for body in bodies]
    client = Client(HTTP_HOST="localhost")
    url = f"/webhooks/stripe/{conn.slug}/"
    started = time.perf_counter()
    for body, signature in signed:
        response = client.post(
            url, body, content_type="application/json", HTTP_STRIPE_SIGNATURE=signature
        )
        if response.status_code != 200:
            raise SystemExit(f"the webhook view answered {response.status_code}")
    return len(bodies) / (time.perf_counter() - started)


def webhook_child() -> None:
    """In a fresh process configured for production (``REDIS_URL``: the Redis broker)."""
    os.environ["MLC_VAR_DIR"] = tempfile.mkdtemp(prefix="mlc-bench-wh-")
    os.environ["DJANGO_SETTINGS_MODULE"] = "mlconnector.settings"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django_q.brokers import get_broker

    try:
        print(f"{webhook_rate([json.dumps(event(n)) for n in range(EVENTS)]):.0f}")
    finally:
        get_broker().purge_queue()  # the queued tasks were only there to be measured


def part_webhooks(summary: dict[str, Any]) -> None:
    bodies = [json.dumps(event(n)) for n in range(EVENTS)]
    embedded = statistics.median(webhook_rate(bodies) for _ in range(WEBHOOK_ROUNDS))
    print(f"6. Webhook ingestion, {EVENTS} signed Stripe events (verify, store, queue, 200)")
    print(
        f"  SQLite and the django-q2 ORM broker (the embedded default): {embedded:.0f} events/s "
        f"(event and task in one transaction; median of {WEBHOOK_ROUNDS})"
    )
    summary["webhook_events_per_s_orm"] = f"{embedded:.0f}"
    if redis_reachable():
        rates = []
        for _ in range(WEBHOOK_ROUNDS):
            out = subprocess.run(  # noqa: S603
                [sys.executable, __file__, "--webhook-child"],
                cwd=ROOT,
                env={**os.environ, "REDIS_URL": REDIS},
                capture_output=True,
                text=True,
                check=True,
            )
            rates.append(float(out.stdout.strip().splitlines()[-1]))
        production = statistics.median(rates)
        print(f"  SQLite and the Redis broker (production's queue): {production:.0f} events/s")
        summary["webhook_events_per_s_redis"] = f"{production:.0f}"
    djstripe = djstripe_rate(bodies)
    if djstripe.isdigit():
        more = [djstripe_rate(bodies) for _ in range(WEBHOOK_ROUNDS - 1)]
        djstripe = f"{statistics.median(float(r) for r in [djstripe, *more] if r.isdigit()):.0f}"
    summary["djstripe_webhook_events_per_s"] = djstripe
    print(f"  dj-stripe's webhook view on the same events (SQLite, no queue): {djstripe}")


def event(n: int) -> dict[str, Any]:
    return {
        "id": f"evt_bench{n:08d}",
        "object": "event",
        "api_version": "2024-06-20",
        "created": 1_700_000_000 + n,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": "charge.succeeded",
        "data": {
            "object": {
                "id": f"ch_bench{n:08d}",
                "object": "charge",
                "amount": 1000 + n,
                "currency": "eur",
                "paid": True,
                "status": "succeeded",
                "metadata": {},
            }
        },
    }


def djstripe_rate(bodies: list[str]) -> str:
    """dj-stripe's view on the same events, in its own process and environment
    (``var/bench-djstripe``, or ``BENCH_DJSTRIPE_PYTHON``: a Python with dj-stripe)."""
    from connections.sandbox.stripe import sign

    python = os.environ.get("BENCH_DJSTRIPE_PYTHON") or str(
        ROOT / "var" / "bench-djstripe" / "bin" / "python"
    )
    if not Path(python).exists():
        return "not measured (no dj-stripe environment: make bench builds var/bench-djstripe)"
    secret = "whsec_" + secrets.token_hex(12)
    path = Path(tempfile.mkdtemp(prefix="mlc-bench-dj-")) / "events.json"
    signatures = [sign(body, secret) for body in bodies]
    path.write_text(json.dumps({"secret": secret, "bodies": bodies, "signatures": signatures}))
    out = subprocess.run(  # noqa: S603
        [python, str(ROOT / "benchmarks" / "djstripe_webhooks.py"), str(path)],
        env={k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"},
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode:
        return f"not measured (dj-stripe run failed: {out.stderr.strip()[-300:]})"
    return out.stdout.strip().splitlines()[-1]


def setup_django() -> None:
    os.environ.setdefault("MLC_VAR_DIR", tempfile.mkdtemp(prefix="mlc-bench-"))
    os.environ["DJANGO_SETTINGS_MODULE"] = "mlconnector.settings"
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("REDIS_URL", None)
    os.environ["RATE_LIMIT_PREFIX"] = f"mlc:bench:{time.time_ns()}:"  # a fresh DB reuses pks
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def main() -> None:
    if sys.argv[1:2] == ["--memory-child"]:
        memory_child(int(sys.argv[2]), int(sys.argv[3]))
        return
    if sys.argv[1:2] == ["--webhook-child"]:
        webhook_child()
        return
    setup_django()
    started = time.perf_counter()
    print("CloudSuite ↔ Stripe benchmark (SQLite; the database rate limiter unless noted)\n")
    summary: dict[str, Any] = {}
    only = set(os.environ.get("BENCH_ONLY", "").split(",")) - {""}
    parts = {
        "overhead": part_overhead,
        "limit": part_limit,
        "workers": part_two_workers,
        "payments": part_payments,
        "memory": part_memory,
        "webhooks": part_webhooks,
        "cin7": part_cin7,
    }
    for name, part in parts.items():
        if not only or name in only:
            part(summary)
            print()
    print(f"Summary ({time.perf_counter() - started:.0f} s)")
    if "invoices_per_s_at_limits" in summary and "payments_per_s_at_limits" in summary:
        minutes = (
            MONTH_END / float(summary["invoices_per_s_at_limits"])
            + MONTH_END / float(summary["payments_per_s_at_limits"])
        ) / 60
        summary["month_end_minutes"] = f"{minutes:.0f}"
    for name in (
        "client_cpu_ratio",
        "overhead_ratio",
        "limit_share_at_150ms",
        "limit_share_of_budget_at_150ms",
        "limit_429_strict",
        "stripe_calls_per_invoice",
        "invoices_per_s_at_limits",
        "limit_429_after_warmup",
        "stripe_calls_per_payment",
        "m3_requests_per_payment",
        "m3_requests_per_receipt_batch",
        "payments_per_s_at_limits",
        "memory_ratio_10x",
        "webhook_events_per_s_orm",
        "webhook_events_per_s_redis",
        "djstripe_webhook_events_per_s",
        "month_end_minutes",
        "cin7_calls_suppliers",
        "cin7_calls_purchases",
        "cin7_calls_unchanged_rerun",
    ):
        print(f"{name}: {summary.get(name, 'not measured')}")


if __name__ == "__main__":
    main()
