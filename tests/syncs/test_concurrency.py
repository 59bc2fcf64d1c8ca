"""Records in flight side by side: real load threads, real simulators with latency, and a
committed database (each load thread has its own connection)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from audit.models import AuditRecord, PostingLedger
from connections.models import Connection
from connections.sandbox.base import Served
from connections.sandbox.m3 import M3Simulator
from connections.sandbox.stripe import StripeSimulator
from syncs.models import Cursor, FieldMapping, Integration, SyncRun
from syncs.runner import Runner

S = AuditRecord.Status
pytestmark = pytest.mark.django_db(transaction=True)
WIDTH = 6


def make(flow: str, source: Connection, target: Connection) -> Integration:
    integ = Integration(
        name=flow, slug=flow.replace(".", "-"), flow=flow, source=source, target=target
    )
    integ.full_clean()
    integ.save()
    return integ


def run(integ: Integration) -> SyncRun:
    return Runner(Integration.objects.get(pk=integ.pk), trigger="manual").run()


def in_flight(conn: Connection, width: int) -> None:
    conn.settings = {**conn.settings, "max_in_flight": width, "rate_limit_per_minute": 60000}
    conn.save()


@pytest.fixture
def sims(m3_sim: Served, stripe_sim: Served) -> tuple[M3Simulator, StripeSimulator]:
    m3: M3Simulator = m3_sim.app  # type: ignore[assignment]
    stripe: StripeSimulator = stripe_sim.app  # type: ignore[assignment]
    for n in range(4):
        m3.state.put_customer(f"C{n}", CUNM=f"Customer {n}", CUCD="EUR")
    return m3, stripe


def test_invoices_are_sent_side_by_side_and_written_in_order(
    sims: tuple[M3Simulator, StripeSimulator],
    m3_connection: Connection,
    stripe_connection: Connection,
) -> None:
    m3, stripe = sims
    for n in range(30):  # one invoice a day; the one on day 10 waits for its customer
        customer = "C9" if n == 10 else f"C{n % 4}"
        m3.state.add_invoice(
            customer,
            f"{5000 + n}",
            "121.00",
            "EUR",
            vat="21.00",
            ivdt=f"202611{n + 1:02d}",
            dudt="20271231",
        )
    customers = make("m3_stripe.customers", m3_connection, stripe_connection)
    run(customers)
    m3.state.put_customer("C9", CUNM="Late customer", CUCD="EUR")  # not in Stripe yet
    in_flight(stripe_connection, WIDTH)
    # Side by side is what is tested, not pacing: Stripe's limits lifted on both sides.
    stripe.set_conditions(latency_ms=30, rate_limit_per_minute=0, endpoint_rate_per_second=0)
    invoices = make("m3_stripe.invoices", m3_connection, stripe_connection)

    result = run(invoices)

    assert (result.synced, result.failed) == (29, 1)
    assert 1 < stripe.max_concurrent <= WIDTH  # side by side, never more than the setting
    created = [i["metadata"]["m3_invoice"] for i in stripe.objects["invoice"].values()]
    assert len(created) == len(set(created)) == 29
    posted = PostingLedger.objects.filter(target="stripe.invoice")
    assert posted.filter(state=PostingLedger.State.CONFIRMED).count() == 29
    # Written in the order read (invoice date, here), whatever order the loads finished in;
    # and the cursor stays where it was: the invoice that waits must be read again.
    order = list(
        AuditRecord.objects.filter(run=result).order_by("pk").values_list("source_key", flat=True)
    )
    assert order == sorted(order, key=lambda key: int(key.rsplit("/", 1)[1]))
    assert not Cursor.objects.filter(integration=invoices).exists()

    assert run(customers).synced == 1
    last = run(invoices)
    assert (last.synced, last.failed) == (1, 0)  # only the one that waited: the rest is posted
    assert len(stripe.objects["invoice"]) == 30
    assert Cursor.objects.get(integration=invoices).value == "20261130"


def test_payments_on_one_invoice_are_judged_one_after_another(
    sims: tuple[M3Simulator, StripeSimulator],
    m3_connection: Connection,
    stripe_connection: Connection,
) -> None:
    m3, stripe = sims
    m3.state.put_account("1930", "Bank EUR")
    for n in range(6):
        m3.state.add_invoice(
            f"C{n % 4}", f"{7000 + n}", "100.00", "EUR", ivdt="20261101", dudt="20271231"
        )
    run(make("m3_stripe.customers", m3_connection, stripe_connection))
    run(make("m3_stripe.invoices", m3_connection, stripe_connection))
    payments = make("stripe_m3.payments", stripe_connection, m3_connection)
    payments.settings = {"receipts_per_request": 1}  # each receipt a request: side by side
    payments.save()
    FieldMapping.objects.create(
        integration=payments, kind="gl_account", source_value="stripe_receipts", target_value="1930"
    )
    in_flight(m3_connection, WIDTH)
    m3.set_conditions(latency_ms=20)

    def pay(cino: str, minor: int) -> None:
        (invoice,) = [
            i for i in stripe.objects["invoice"].values() if i["metadata"]["m3_invoice"] == cino
        ]
        meta = {k: v for k, v in invoice["metadata"].items() if k.startswith("m3_")}
        stripe.act(lambda: stripe.charge(amount=minor, currency="eur", metadata=meta))

    pay("7000", 4000)  # 40.00 of 100.00
    pay("7000", 6000)  # the rest
    pay("7000", 1000)  # one payment too many: the invoice is paid by then
    for n in range(1, 6):
        pay(f"{7000 + n}", 10000)

    result = run(payments)

    assert (result.synced, result.flagged, result.failed) == (7, 1, 0)
    # Whatever order Stripe lists them in, the three on 7000 are judged one after another: two
    # fit in its 100.00, the third is flagged, and nothing is ever posted beyond the amount.
    on_7000 = [-r["CUAM"] for r in m3.state.receipts() if r["CINO"] == "7000"]
    assert len(on_7000) == 2 and sum(on_7000) <= Decimal("100.00")
    assert len(m3.state.receipts()) == 7
    (flag,) = AuditRecord.objects.filter(integration=payments, status=S.FLAGGED)
    assert "Overpayment" in flag.reason or "already paid in CloudSuite" in flag.reason
    assert m3.max_concurrent > 1


def test_a_run_that_stops_still_writes_what_it_sent(
    sims: tuple[M3Simulator, StripeSimulator],
    m3_connection: Connection,
    stripe_connection: Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    m3, stripe = sims
    for n in range(12):
        m3.state.add_invoice(
            f"C{n % 4}",
            f"{6000 + n}",
            "50.00",
            "EUR",
            vat="0",
            ivdt=f"202611{n + 1:02d}",
            dudt="20271231",
        )
    run(make("m3_stripe.customers", m3_connection, stripe_connection))
    in_flight(stripe_connection, WIDTH)
    stripe.set_conditions(latency_ms=20, rate_limit_per_minute=0, endpoint_rate_per_second=0)
    invoices = make("m3_stripe.invoices", m3_connection, stripe_connection)
    from syncs.flows.m3_stripe_invoices import M3InvoicesToStripe

    real_extract = M3InvoicesToStripe.extract

    def extract_then_fail(self: Any, ctx: Any) -> Any:
        for n, record in enumerate(real_extract(self, ctx)):
            if n == 8:
                raise RuntimeError("the source went away")
            yield record

    monkeypatch.setattr(M3InvoicesToStripe, "extract", extract_then_fail)
    result = run(invoices)

    assert result.status == SyncRun.Status.FAILED
    assert result.synced == 8 and len(stripe.objects["invoice"]) == 8
    posted = PostingLedger.objects.filter(target="stripe.invoice")
    assert posted.count() == posted.filter(state=PostingLedger.State.CONFIRMED).count() == 8


def test_a_run_split_across_workers_posts_every_invoice_once(
    sims: tuple[M3Simulator, StripeSimulator],
    m3_connection: Connection,
    stripe_connection: Connection,
    admin_client: Any,
) -> None:
    m3, stripe = sims
    for n in range(4, 12):
        m3.state.put_customer(f"C{n}", CUNM=f"Customer {n}", CUCD="EUR")
    for n in range(36):
        m3.state.add_invoice(
            f"C{n % 12}",
            f"{8000 + n}",
            "20.00",
            "EUR",
            vat="0",
            ivdt=f"202611{n % 28 + 1:02d}",
            dudt="20271231",
        )
    run(make("m3_stripe.customers", m3_connection, stripe_connection))
    invoices = make("m3_stripe.invoices", m3_connection, stripe_connection)
    invoices.settings = {"workers": 3}
    invoices.save()

    result = run(invoices)  # the other parts go to django-q2 (run in place in the test suite)

    parts = list(SyncRun.objects.filter(parent=result).order_by("pk"))
    assert len(parts) == 2 and all(p.trigger == SyncRun.Trigger.PART for p in parts)
    assert all(p.status == SyncRun.Status.SUCCEEDED and p.synced > 0 for p in parts)
    assert result.status == SyncRun.Status.SUCCEEDED and result.synced == 36  # all parts added
    created = [i["metadata"]["m3_invoice"] for i in stripe.objects["invoice"].values()]
    assert sorted(created) == [str(8000 + n) for n in range(36)]  # each once, none missed
    assert Cursor.objects.get(integration=invoices).value == "20261128"
    page = admin_client.get(f"/admin/syncs/syncrun/{result.pk}/change/").content.decode()
    assert "other parts:" in page and f"#{parts[0].pk}" in page
    page = admin_client.get(f"/admin/syncs/syncrun/{parts[0].pk}/change/").content.decode()
    assert f"run #{result.pk}" in page


def test_a_split_run_whose_part_must_read_again_holds_the_cursor(
    sims: tuple[M3Simulator, StripeSimulator],
    m3_connection: Connection,
    stripe_connection: Connection,
) -> None:
    m3, _ = sims
    for n in range(12):
        m3.state.add_invoice(
            f"C{n % 4}",
            f"{9100 + n}",
            "20.00",
            "EUR",
            vat="0",
            ivdt="20261110",
            dudt="20271231",
        )
    run(make("m3_stripe.customers", m3_connection, stripe_connection))
    m3.state.put_customer("C3", CUNM="Changed, not synced", CUCD="EUR")
    m3.state.put_customer("C5", CUNM="New, not in Stripe yet", CUCD="EUR")
    m3.state.add_invoice("C5", "9199", "20.00", "EUR", vat="0", ivdt="20261111", dudt="20271231")
    invoices = make("m3_stripe.invoices", m3_connection, stripe_connection)
    invoices.settings = {"workers": 2}
    invoices.save()
    result = run(invoices)
    assert result.synced == 12 and result.failed == 1  # C5's invoice waits for its customer
    assert not Cursor.objects.filter(integration=invoices).exists()


def test_a_split_run_is_completed_by_its_last_part_and_no_worker_waits_for_it(
    sims: tuple[M3Simulator, StripeSimulator],
    m3_connection: Connection,
    stripe_connection: Connection,
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
) -> None:
    """The run's own part ends before the others start: it returns at once, still running and
    held by no worker; the reaper leaves it be; the last part to finish completes it and moves
    the cursor."""
    from syncs.run import parts as parts_module
    from syncs.services import integration_run_part, runs_interrupt, runs_reap

    m3, stripe = sims
    for n in range(12):
        m3.state.add_invoice(
            f"C{n % 4}", f"{9300 + n}", "20.00", "EUR", vat="0", ivdt="20261105", dudt="20271231"
        )
    run(make("m3_stripe.customers", m3_connection, stripe_connection))
    invoices = make("m3_stripe.invoices", m3_connection, stripe_connection)
    invoices.settings = {"workers": 3}
    invoices.save()
    queued: list[tuple[Any, ...]] = []
    monkeypatch.setattr(parts_module, "async_task", lambda *args, **kw: queued.append(args))

    parent = run(invoices)  # its own part only: the other two wait in the queue

    assert len(queued) == 2 and parent.status == SyncRun.Status.RUNNING
    assert parent.own_part_done_at is not None and parent.worker == "" and 0 < parent.synced < 12
    assert not Cursor.objects.filter(integration=invoices).exists()
    settings.MLC = {**settings.MLC, "RUN_STALE_SECONDS": 0}
    assert runs_reap(integration=invoices) == 0  # waiting for parts is not a dead worker
    assert runs_interrupt(workers=[parent.worker or "nobody:1"]) == 0
    for _task, _integration_id, _run_id, part, window_start in queued:
        integration_run_part(
            integration=invoices, parent=parent, part=part, window_start=window_start
        )
    parent.refresh_from_db()
    assert parent.status == SyncRun.Status.SUCCEEDED and parent.synced == 12
    assert parent.total == 12 and parent.finished_at is not None
    assert Cursor.objects.get(integration=invoices).value == "20261105"
    assert len(stripe.objects["invoice"]) == 12


def test_a_split_run_whose_parts_never_come_is_closed_by_the_reaper_after_the_part_wait(
    sims: tuple[M3Simulator, StripeSimulator],
    m3_connection: Connection,
    stripe_connection: Connection,
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
) -> None:
    from syncs.run import parts as parts_module
    from syncs.services import runs_reap

    m3, _ = sims
    for n in range(8):
        m3.state.add_invoice(
            f"C{n % 4}", f"{9400 + n}", "20.00", "EUR", vat="0", ivdt="20261106", dudt="20271231"
        )
    run(make("m3_stripe.customers", m3_connection, stripe_connection))
    invoices = make("m3_stripe.invoices", m3_connection, stripe_connection)
    invoices.settings = {"workers": 2}
    invoices.save()
    monkeypatch.setattr(parts_module, "async_task", lambda *args, **kw: None)  # lost
    parent = run(invoices)
    assert parent.status == SyncRun.Status.RUNNING
    settings.MLC = {**settings.MLC, "RUN_STALE_SECONDS": 0, "PART_WAIT_SECONDS": 0}
    assert runs_reap(integration=invoices) == 1
    parent.refresh_from_db()
    assert parent.status == SyncRun.Status.INTERRUPTED
    assert not Cursor.objects.filter(integration=invoices).exists()
