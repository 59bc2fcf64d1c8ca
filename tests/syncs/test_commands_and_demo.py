"""``manage.py sync``, the sandbox server, the demo seed, connection checks, webhook reprocess."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from connections.models import Connection, OAuthToken
from connections.providers.base import InboundEvent
from connections.sandbox.server import start_sandbox
from connections.sandbox.stripe import sign
from connections.services import connection_check, key_rotate
from syncs.demo import demo_seed
from syncs.models import FieldMapping, Integration, SyncRun, WebhookEvent
from syncs.services import webhook_events_reprocess, webhook_receive


def inbound(body: str) -> InboundEvent:
    event = json.loads(body)
    return InboundEvent(event["id"], event["type"], timezone.now(), event)


@pytest.fixture
def sandbox(tmp_path: Path) -> Any:
    box = start_sandbox(state_dir=tmp_path / "sandbox", seed=True)
    yield box
    box.stop()


def test_the_sandbox_seeds_a_tenant_and_keeps_its_state(tmp_path: Path) -> None:
    box = start_sandbox(state_dir=tmp_path, seed=True)
    m3 = box["m3"].app
    assert len(m3.state.customers) == 10 and len(m3.state.ledger) == 24
    m3.state.put_customer("C9999", CUNM="Added later")
    box.stop()
    again = start_sandbox(state_dir=tmp_path, seed=True)  # seeding an existing tenant: no-op
    try:
        state = again["m3"].app.state
        assert "C9999" in state.customers and len(state.ledger) == 24
    finally:
        again.stop()


def test_demo_seed_creates_the_integrations_once(
    db: Any, sandbox: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        demo_seed(urls=sandbox.urls(), web_url="http://x")
        demo_seed(urls=sandbox.urls(), web_url="http://x")
    assert Integration.objects.count() == 15 and Connection.objects.count() == 6
    assert FieldMapping.objects.filter(source_value="stripe_receipts:EUR").count() == 1
    assert all(i.q_schedule_id for i in Integration.objects.exclude(schedule_type="off"))
    stripe = Connection.objects.get(slug="stripe-sandbox")
    (endpoint,) = sandbox["stripe"].app.webhooks.endpoints
    assert endpoint["url"] == "http://x/webhooks/stripe/stripe-sandbox/"
    assert endpoint["secret"] == stripe.credentials["webhook_secret"]
    assert "invoice.paid" in endpoint["enabled_events"]
    assert "customer.created" not in endpoint["enabled_events"]
    assert connection_check(connection=Connection.objects.get(slug="cloudsuite-sandbox")).ok
    assert connection_check(connection=stripe).ok
    assert connection_check(connection=Connection.objects.get(slug="ifs-sandbox")).ok
    assert connection_check(connection=Connection.objects.get(slug="wise-sandbox")).ok
    assert connection_check(connection=Connection.objects.get(slug="cin7-sandbox")).ok
    wise_sim = sandbox["wise"].app
    assert wise_sim.endpoints == ["http://x/webhooks/wise/wise-sandbox/"]
    stripe.refresh_from_db()
    assert stripe.status == Connection.Status.OK and stripe.last_checked_at
    # A key rotated from the admin survives the next start of the demo.
    assert stripe.setting("rotate_every_days") == 30
    assert key_rotate(connection=stripe).status == "done"
    demo_seed(urls=sandbox.urls(), web_url="http://x")
    stripe.refresh_from_db()
    assert stripe.credentials["api_key"] == sandbox["stripe"].app.api_key
    assert connection_check(connection=stripe).ok


def test_sync_command_prints_a_summary_and_fails_loudly(db: Any, sandbox: Any) -> None:
    demo_seed(urls=sandbox.urls(), web_url="http://x")
    out = io.StringIO()
    call_command("sync", "cloudsuite-customers-to-stripe", stdout=out)
    assert "Succeeded — 10 synced" in out.getvalue()
    with pytest.raises(CommandError, match="No integration “nope”"):
        call_command("sync", "nope")
    broken = Connection.objects.get(slug="cloudsuite-sandbox")  # a wrong service secret
    broken.credentials = {**sandbox["m3"].app.ionapi(sandbox["m3"].url), "sask": "wrong-secret"}
    broken.save()
    OAuthToken.objects.all().delete()  # force a new token, with the wrong secret
    out = io.StringIO()
    with pytest.raises(CommandError, match="The run failed") as info:
        call_command("sync", "cloudsuite-customers-to-stripe", stdout=out)
    assert info.value.returncode == 2
    assert "refused the credentials" in out.getvalue() and "wrong-secret" not in out.getvalue()
    assert SyncRun.objects.filter(status="failed").count() == 1


def test_a_failed_webhook_event_can_be_processed_again(
    db: Any,
    make_connection: Any,
    django_capture_on_commit_callbacks: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    conn = make_connection("stripe")
    body = json.dumps({"id": "evt_1", "type": "invoice.paid", "data": {"object": {}}})
    calls: list[int] = []

    def process(*, event: WebhookEvent) -> list:
        calls.append(event.pk)
        WebhookEvent.objects.filter(pk=event.pk).update(error="boom")
        return []

    monkeypatch.setattr("syncs.services.webhook_process", process)
    with django_capture_on_commit_callbacks(execute=True):
        event, created = webhook_receive(
            connection=conn,
            event=inbound(body),
            raw_body=body,
            headers={"Stripe-Signature": sign(body, "x")},
        )
    assert created and calls == [event.pk]
    with django_capture_on_commit_callbacks(execute=True):
        assert webhook_events_reprocess(event_ids=[event.pk]) == 1
    assert calls == [event.pk, event.pk]
    WebhookEvent.objects.filter(pk=event.pk).update(processed=True, error="")
    assert webhook_events_reprocess(event_ids=[event.pk]) == 0


def test_events_no_flow_consumes_are_stored_but_run_nothing(
    db: Any,
    make_connection: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    conn = make_connection("stripe")
    payments = Integration(
        name="p",
        slug="p",
        flow="stripe_m3.payments",
        source=conn,
        target=make_connection("infor_m3"),
    )
    payments.full_clean()
    payments.save()
    body = json.dumps({"id": "evt_2", "type": "customer.created", "data": {"object": {}}})
    with django_capture_on_commit_callbacks(execute=True):
        event, _ = webhook_receive(connection=conn, event=inbound(body), raw_body=body, headers={})
    event.refresh_from_db()
    assert event.processed and event.error == ""
    assert not SyncRun.objects.exists()


def test_gl_mappings_are_checked_against_the_chart(db: Any, sandbox: Any) -> None:
    from syncs.mappings import gl_mappings_check

    demo_seed(urls=sandbox.urls(), web_url="http://x")
    payments = Integration.objects.get(slug="stripe-payments-to-cloudsuite")
    payments.mappings.create(
        kind="gl_account", source_value="stripe_receipts:USD", target_value="1939;100"
    )
    known, unknown = gl_mappings_check(integration=payments)
    assert "stripe_receipts:EUR → 1930 (Bank EUR (Stripe clearing))" in known
    assert unknown == ["stripe_receipts:USD → 1939: not in the CloudSuite chart"]


def test_the_demo_pays_suppliers_through_wise(db: Any, sandbox: Any) -> None:
    """The demo's whole Wise loop on the seeded tenant: recipients, quotes, a person paying
    them in the Wise sandbox, and the payment journals in CloudSuite (found by the poll)."""
    import random

    from syncs.runner import Runner

    demo_seed(urls=sandbox.urls(), web_url="http://127.0.0.1:9")  # no web server: the poll
    sandbox["wise"].app.endpoints.clear()

    def run(slug: str) -> Any:
        return Runner(Integration.objects.get(slug=slug), trigger="manual").run()

    recipients = run("cloudsuite-suppliers-to-wise")
    # S2005 has no bank details; S2006 is paid in USD, its address read from user-defined
    # fields (the demo's recipient_fields), as Wise needs an address for USD recipients
    assert recipients.synced == 5 and recipients.flagged == 0
    wise = sandbox["wise"].app
    usd = [r for r in wise.recipients.values() if r["currency"] == "USD"]
    assert len(usd) == 1 and usd[0]["details"]["address"]["firstLine"] == "350 Fifth Avenue"
    quotes = run("cloudsuite-invoices-to-wise-quotes")
    # one invoice of each supplier is due within the week; the fifth supplier has no recipient
    assert quotes.synced == 5 and quotes.flagged == 1
    assert {q["preferredPayIn"] for q in wise.quotes.values()} == {"BALANCE"}
    rng = random.Random(1)
    for _ in range(40):
        wise.activity(rng)
    sent = [t for t in wise.transfers.values() if t["status"] == "outgoing_payment_sent"]
    assert sent
    payments = run("wise-transfers-to-cloudsuite")
    assert payments.synced == len(sent) and payments.flagged == 0
    assert len(sandbox["m3"].app.state.journal_lines()) == 2 * len(sent)
    assert wise.violations == []


def test_the_demo_posts_stampli_exports_to_cloudsuite(db: Any, sandbox: Any) -> None:
    """The demo's Stampli loop on the seeded tenant: the sandbox's exports over real SFTP, an
    unknown vendor in the review queue, a coding difference flagged, payments recorded."""
    import random

    from syncs.runner import Runner

    demo_seed(urls=sandbox.urls(), web_url="http://127.0.0.1:9")
    stampli = sandbox["stampli"].app

    def run(slug: str) -> Any:
        return Runner(Integration.objects.get(slug=slug), trigger="manual").run()

    first = run("stampli-invoices-to-cloudsuite")
    reasons = " | ".join(first.records.values_list("reason", flat=True))
    assert first.synced + first.flagged == 3, reasons
    assert "V-9001" in reasons  # the vendor CloudSuite does not know
    rng = random.Random(5)
    for _ in range(6):
        stampli.export_batch(rng)
    later = run("stampli-invoices-to-cloudsuite")
    assert later.synced >= 6 and later.failed == 0
    assert len(sandbox["m3"].app.state.ap_invoices()) >= 8
    paid = run("stampli-payments-to-cloudsuite")
    assert paid.failed == 0 and paid.synced == len(
        [e for e in stampli.exported if e.get("paid")]
    ), list(paid.records.values_list("reason", flat=True))


def test_the_demo_sends_suppliers_and_purchases_to_cin7(db: Any, sandbox: Any) -> None:
    from syncs.runner import Runner

    demo_seed(urls=sandbox.urls(), web_url="http://127.0.0.1:9")
    Connection.objects.filter(slug="cin7-sandbox").update(
        settings={
            **Connection.objects.get(slug="cin7-sandbox").settings,
            "rate_limit_per_minute": 6000,
        }
    )
    cin7 = sandbox["cin7"].app
    cin7.rate_limit.per_minute = None

    def run(slug: str) -> Any:
        return Runner(Integration.objects.get(slug=slug), trigger="manual").run()

    assert run("cloudsuite-suppliers-to-cin7").synced == 6
    purchases = run("cloudsuite-purchases-to-cin7")
    assert purchases.synced == 4, list(purchases.records.values_list("reason", flat=True))
    assert sum(1 for t in cin7.purchases.values() if t["Status"] == "INVOICED") == 3
    assert cin7.violations == []


def test_the_demo_gives_a_finance_reviewer_login_beside_the_admin(
    db: Any, settings: Any, tmp_path: Any
) -> None:
    from io import StringIO

    from django.contrib.auth.models import User
    from django.core.management import call_command

    settings.VAR_DIR = tmp_path
    settings.STATIC_ROOT = tmp_path / "static"
    out = StringIO()
    call_command("demo", "--setup-only", stdout=out)
    assert "Finance reviewer: reviewer /" in out.getvalue()
    reviewer = User.objects.get(username="reviewer")
    assert reviewer.is_staff and not reviewer.is_superuser
    assert list(reviewer.groups.values_list("name", flat=True)) == ["Finance reviewer"]
    assert reviewer.has_perm("audit.change_reviewitem")
    assert not reviewer.has_perm("connections.view_connection")
