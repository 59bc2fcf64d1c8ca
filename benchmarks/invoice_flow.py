"""Benchmark: CloudSuite invoices through the invoice flow into Stripe, against the simulators.

Prints, from one run:
1. the connector's time for N invoices (default 10,000) against a bare loop that makes the same
   HTTP calls with plain ``requests`` (no ledger, no audit, no retries), as a ratio, and the
   connector process's peak memory;
2. with a rate limit configured on the Stripe connection, the share of that limit the flow
   achieves.

The simulators run in their own process (``manage.py sandbox``) with no rate limit of their own,
so the measured process holds only the connector.  Usage: ``make bench`` (``BENCH_INVOICES=1000
make bench`` for a quick look; ``BENCH_REDIS_URL=redis://127.0.0.1:6379/14`` puts the shared rate
limiter on Redis).
"""

from __future__ import annotations

import base64
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
N = int(os.environ.get("BENCH_INVOICES", "10000"))
CUSTOMERS = int(os.environ.get("BENCH_CUSTOMERS", "500"))
RATE_PER_MINUTE = int(os.environ.get("BENCH_RATE", "1200"))
RATE_INVOICES = int(os.environ.get("BENCH_RATE_INVOICES", "60"))
CHUNK = 50


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sandbox:
    """``manage.py sandbox`` in a child process."""

    def __init__(self, invoices: int, customers: int) -> None:
        self.m3_port, self.stripe_port = free_port(), free_port()
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
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                requests.get(f"{self.stripe}/_sandbox/state", timeout=1)
                requests.get(f"{self.m3}/_sandbox/state", timeout=1)
                return
            except requests.RequestException:
                time.sleep(0.2)
        raise SystemExit("the sandbox did not start")

    def stripe_requests(self) -> int:
        return requests.get(f"{self.stripe}/_sandbox/state", timeout=10).json()["api_requests"]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)


def connector_setup(box: Sandbox, suffix: str, stripe_limit: int) -> dict[str, Any]:
    from connections.models import Connection
    from syncs.models import Integration

    ionapi = requests.get(f"{box.m3}/_sandbox/ionapi", timeout=10).json()
    m3 = Connection(
        name=f"M3 {suffix}",
        slug=f"m3-{suffix}",
        kind="infor_m3",
        credentials=ionapi,
        settings={"cono": 100, "divi": "AAA", "rate_limit_per_minute": 10**9, "read_timeout": 120},
    )
    stripe = Connection(
        name=f"Stripe {suffix}",
        slug=f"stripe-{suffix}",
        kind="stripe",
        credentials={"api_key": "sk_test_sandbox_0123456789abcdef"},
        settings={
            "base_url": box.stripe,
            "rate_limit_per_minute": stripe_limit,
            "rate_limit_burst": 1 if stripe_limit < 10**9 else 10,
        },
    )
    integrations = {}
    for conn in (m3, stripe):
        conn.full_clean()
        conn.save()
    for flow in ("m3_stripe.customers", "m3_stripe.invoices"):
        integ = Integration(
            name=f"{flow} {suffix}",
            slug=f"{flow.replace('.', '-')}-{suffix}",
            flow=flow,
            source=m3,
            target=stripe,
        )
        integ.full_clean()
        integ.save()
        integrations[flow] = integ
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
    calls = 2
    listed = session.get(
        f"{base}/ARS200MI/LstInvByDivi;maxrecs=0",
        headers=m3,
        timeout=120,
        params={"CONO": 100, "DIVI": "AAA", "FDIV": "AAA", "TDIV": "AAA"},
    ).json()
    entries = [{k: v.strip() for k, v in r.items()} for r in listed["results"][0]["records"]]
    entries = [e for e in entries if e["TRCD"] == "10" and e["RECO"] == "0"]
    details = []
    for start in range(0, len(entries), CHUNK):
        body = {
            "program": "ARS200MI",
            "cono": 100,
            "transactions": [
                {
                    "transaction": "GetInvoice",
                    "record": {"YEA4": e["YEA4"], "JRNO": e["JRNO"], "JSNO": e["JSNO"]},
                }
                for e in entries[start : start + CHUNK]
            ],
        }
        answer = session.post(
            base,
            headers=m3,
            json=body,
            timeout=120,
            params={"cono": 100, "divi": "AAA", "extendedresult": "true", "righttrim": "true"},
        ).json()
        details += [r["records"][0] for r in answer["results"]]
        calls += 1
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
    for entry, detail in zip(entries, details, strict=True):
        key, currency = f"bare-{entry['CINO']}", detail["CUCD"].lower()
        total, vat = float(detail["CUAM"]), float(detail["VTAM"])
        invoice = session.post(
            f"{box.stripe}/v1/invoices",
            timeout=30,
            headers={**stripe, "Idempotency-Key": key + ":create"},
            data={
                "customer": customers[entry["CUNO"]],
                "currency": currency,
                "collection_method": "send_invoice",
                "days_until_due": 30,
                "metadata[m3_invoice]": entry["CINO"],
            },
        ).json()
        for n, amount in enumerate((round((total - vat) * 100), round(vat * 100)), start=1):
            session.post(
                f"{box.stripe}/v1/invoiceitems",
                timeout=30,
                headers={**stripe, "Idempotency-Key": f"{key}:item:{n}"},
                data={
                    "customer": invoice["customer"],
                    "invoice": invoice["id"],
                    "amount": amount,
                    "currency": currency,
                },
            )
        session.post(
            f"{box.stripe}/v1/invoices/{invoice['id']}/finalize",
            timeout=30,
            headers={**stripe, "Idempotency-Key": key + ":finalize"},
        )
        calls += 4
    return calls


def main() -> None:
    os.environ.setdefault("MLC_VAR_DIR", tempfile.mkdtemp(prefix="mlc-bench-"))
    os.environ["DJANGO_SETTINGS_MODULE"] = "mlconnector.settings"
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("REDIS_URL", None)
    if os.environ.get("BENCH_REDIS_URL"):  # the shared rate limiter on Redis, as in production
        os.environ["REDIS_URL"] = os.environ["BENCH_REDIS_URL"]
        os.environ["RATE_LIMIT_PREFIX"] = f"mlc:bench:{time.time_ns()}:"  # a fresh DB reuses pks
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django.conf import settings

    backend = settings.MLC["RATE_LIMIT_BACKEND"]
    print(
        f"Invoice flow benchmark: {N} invoices, {CUSTOMERS} customers "
        f"(SQLite, {backend} rate limiter)"
    )

    box = Sandbox(N, CUSTOMERS)
    try:
        flows = connector_setup(box, "fast", 10**9)
        run(flows["m3_stripe.customers"])
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        before = box.stripe_requests()
        started = time.perf_counter()
        result = run(flows["m3_stripe.invoices"])
        connector_seconds = time.perf_counter() - started
        rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        connector_stripe_calls = box.stripe_requests() - before
        requests.post(f"{box.stripe}/_sandbox/reset", json={"keep": ["customer"]}, timeout=30)
        started = time.perf_counter()
        bare_calls = bare_loop(box)
        bare_seconds = time.perf_counter() - started
    finally:
        box.stop()

    print(
        f"  connector: {connector_seconds:8.2f} s  ({result.synced} synced, {result.failed} "
        f"failed, {result.flagged} flagged; {connector_stripe_calls} Stripe requests)"
    )
    print(f"  bare loop: {bare_seconds:8.2f} s  ({bare_calls} HTTP requests, no bookkeeping)")
    print(f"  ratio connector / bare loop: {connector_seconds / bare_seconds:.2f}")
    print(
        f"  per invoice: connector {1000 * connector_seconds / N:.2f} ms, "
        f"bare {1000 * bare_seconds / N:.2f} ms"
    )
    print(
        f"  peak RSS of the connector process: {rss_peak / 1024:.0f} MiB "
        f"(before the invoice run: {rss_before / 1024:.0f} MiB)"
    )

    box = Sandbox(RATE_INVOICES, 10)
    try:
        flows = connector_setup(box, "limited", RATE_PER_MINUTE)
        run(flows["m3_stripe.customers"])
        before = box.stripe_requests()
        started = time.perf_counter()
        limited = run(flows["m3_stripe.invoices"])
        elapsed = time.perf_counter() - started
        calls = box.stripe_requests() - before
    finally:
        box.stop()
    achieved = calls / elapsed * 60
    print(
        f"Rate limit: Stripe connection limited to {RATE_PER_MINUTE}/min (burst 1), "
        f"{RATE_INVOICES} invoices ({limited.synced} synced)"
    )
    print(
        f"  {calls} Stripe requests in {elapsed:.1f} s = {achieved:.0f}/min: "
        f"{100 * achieved / RATE_PER_MINUTE:.1f}% of the configured limit"
    )


if __name__ == "__main__":
    main()
