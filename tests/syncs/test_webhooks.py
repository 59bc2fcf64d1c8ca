"""The one webhook edge: size limit, signature and shape checks, storage, per-integration
processing — against a live server where it matters."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from django.test import Client

from audit.models import AuditRecord
from connections.models import Connection
from connections.providers.stripe import StripeProvider
from connections.sandbox.stripe import sign
from syncs.models import Integration, SyncRun, WebhookEvent, WebhookProcessing
from syncs.services import webhook_process
from tests.syncs.testflow import TARGET, LedgerTestFlow

URL = "/webhooks/stripe/stripe-test/"


def stripe_event(event_id: str = "evt_1", **extra: Any) -> dict[str, Any]:
    return {
        "id": event_id,
        "object": "event",
        "type": "charge.succeeded",
        "created": int(time.time()),
        "data": {"object": {"id": "ch_1", "object": "charge"}},
        **extra,
    }


@pytest.fixture
def stripe_conn(make_connection: Any) -> Connection:
    return make_connection("stripe")


def post(client: Client, body: str | bytes, secret: str | None, **headers: Any) -> Any:
    text = body.decode() if isinstance(body, bytes) else body
    if secret is not None:
        headers["HTTP_STRIPE_SIGNATURE"] = sign(text, secret)
    return client.post(URL, body, content_type="application/json", **headers)


@pytest.mark.django_db(transaction=True)
def test_a_signed_event_is_stored_before_it_is_acknowledged(
    client: Client, stripe_conn: Connection
) -> None:
    secret = stripe_conn.credentials["webhook_secret"]
    body = json.dumps(stripe_event())
    first = post(client, body, secret)
    again = post(client, body, secret)
    assert first.status_code == again.status_code == 200
    assert (first.json()["duplicate"], again.json()["duplicate"]) == (False, True)
    (event,) = WebhookEvent.objects.all()
    assert (event.system, event.event_id, event.event_type) == (
        "stripe",
        "evt_1",
        "charge.succeeded",
    )
    assert event.occurred_at is not None and "Stripe-Signature" in event.headers
    assert event.processed  # no integration reads it: nothing to do


def test_any_of_several_signatures_may_match(client: Client, stripe_conn: Connection) -> None:
    secret = stripe_conn.credentials["webhook_secret"]
    body = json.dumps(stripe_event())
    two = sign(body, "whsec_old") + "," + sign(body, secret).split(",")[1]
    ok = client.post(URL, body, content_type="application/json", HTTP_STRIPE_SIGNATURE=two)
    assert ok.status_code == 200


def test_bad_stale_or_missing_signatures_are_refused(
    client: Client, stripe_conn: Connection
) -> None:
    secret = stripe_conn.credentials["webhook_secret"]
    body = json.dumps(stripe_event())
    stale = sign(body, secret, timestamp=1_000_000)
    answers = [
        post(client, body, "whsec_wrong").status_code,
        client.post(
            URL, body, content_type="application/json", HTTP_STRIPE_SIGNATURE=stale
        ).status_code,
        post(client, body, None).status_code,
    ]
    assert answers == [400, 400, 400]
    assert not WebhookEvent.objects.exists()


def test_unknown_endpoints_are_404(
    client: Client, stripe_conn: Connection, make_connection: Any
) -> None:
    make_connection("infor_m3")
    body = json.dumps(stripe_event())
    secret = stripe_conn.credentials["webhook_secret"]
    headers = {"HTTP_STRIPE_SIGNATURE": sign(body, secret)}
    for url in (
        "/webhooks/stripe/nope/",
        "/webhooks/nosuchsystem/stripe-test/",
        "/webhooks/infor_m3/infor_m3-test/",  # CloudSuite sends no webhooks
    ):
        answer = client.post(url, body, content_type="application/json", **headers)
        assert answer.status_code == 404, url
    assert client.get(URL).status_code == 405


def test_a_body_over_the_limit_is_413_before_verification(
    client: Client, stripe_conn: Connection
) -> None:
    secret = stripe_conn.credentials["webhook_secret"]
    padding = "x" * (3 * 1024 * 1024)
    body = json.dumps(stripe_event(padding=padding))  # 3 MB, validly signed
    answer = post(client, body, secret)
    assert answer.status_code == 413
    assert not WebhookEvent.objects.exists()
    limit = StripeProvider.webhook_max_bytes
    assert (
        post(client, json.dumps(stripe_event(padding="x" * (limit - 400))), secret).status_code
        == 200
    )


@pytest.mark.parametrize(
    "body",
    [
        '{"hello": "world"}',  # JSON, signed, but not a Stripe event
        json.dumps({**stripe_event(), "object": "charge"}),
        json.dumps({**stripe_event(), "id": "evt_" + "x" * 300}),
        json.dumps({**stripe_event(), "id": "ch_notanevent"}),
        json.dumps({**stripe_event(), "created": "yesterday"}),
        json.dumps({**stripe_event(), "data": []}),
        json.dumps(stripe_event(note="nul \u0000 here")),
        '{"id": "evt_1", "deep": ' + "[" * 5000 + "]" * 5000 + "}",
        '{"id": "evt_1", "n": NaN}',
        '{"id": "evt_1", "s": "\\ud800"}',
        "[1, 2, 3]",
        "not json at all",
    ],
    ids=[
        "not-an-event",
        "wrong-object",
        "id-too-long",
        "id-not-evt",
        "created-not-int",
        "no-data-object",
        "nul-character",
        "deep-nesting",
        "nan",
        "lone-surrogate",
        "array",
        "not-json",
    ],
)
def test_a_signed_body_that_is_not_a_stripe_event_is_400_and_not_stored(
    client: Client, stripe_conn: Connection, body: str
) -> None:
    answer = post(client, body, stripe_conn.credentials["webhook_secret"])
    assert answer.status_code == 400, answer.content
    assert "error" in answer.json()
    assert not WebhookEvent.objects.exists()


def test_the_connection_page_shows_the_url_to_register(
    admin_client: Client, stripe_conn: Connection, make_connection: Any
) -> None:
    page = admin_client.get(f"/admin/connections/connection/{stripe_conn.pk}/change/")
    assert "http://testserver/webhooks/stripe/stripe-test/" in page.content.decode()
    m3 = make_connection("infor_m3")
    page = admin_client.get(f"/admin/connections/connection/{m3.pk}/change/")
    assert "/webhooks/" not in page.content.decode()


class EventFlow(LedgerTestFlow):
    """The test flow, fed by Stripe webhook events: one payment per event."""

    key = "test.events"
    webhook_system = "stripe"
    webhook_events = ("charge.succeeded",)

    def records_from_event(self, ctx: Any, event: Any) -> list:
        charge = event.payload["data"]["object"]
        from syncs.flows import SourceRecord

        row = {
            "id": charge["id"],
            "ts": "2026-11-01",
            "invoice": "I",
            "amount_cents": charge.get("amount", 100),
            "account": charge.get("account", "x"),
        }
        return [SourceRecord(charge["id"], row, seen_via="webhook")]


@pytest.fixture
def two_consumers(
    stripe_conn: Connection, make_connection: Any, monkeypatch: pytest.MonkeyPatch
) -> tuple[Integration, Integration]:
    from syncs.flows import FLOWS

    monkeypatch.setitem(FLOWS, EventFlow.key, EventFlow)
    TARGET.reset()
    target = make_connection("infor_m3")
    made = []
    for slug in ("first", "second"):
        integration = Integration(
            name=slug, slug=slug, flow=EventFlow.key, source=stripe_conn, target=target
        )
        integration.full_clean()
        integration.save()
        integration.mappings.create(kind="gl_account", source_value="x", target_value="1930")
        made.append(integration)
    yield made[0], made[1]
    TARGET.reset()


@pytest.mark.django_db(transaction=True)
def test_each_integration_keeps_its_own_processing_status(
    client: Client, stripe_conn: Connection, two_consumers: tuple[Integration, Integration]
) -> None:
    _, second = two_consumers
    second.mappings.get().delete()  # the second integration cannot map the payment: flagged
    TARGET.transient.add("ch_1")  # …and the first fails, retryably, the first time
    body = json.dumps(stripe_event())
    assert post(client, body, stripe_conn.credentials["webhook_secret"]).status_code == 200
    event = WebhookEvent.objects.get()
    states = {p.integration.slug: p.state for p in event.processings.all()}
    assert states == {"first": "failed", "second": "done"}
    assert not event.processed
    TARGET.transient.clear()
    webhook_process(event=event)  # only the failed one runs again
    event.refresh_from_db()
    assert event.processed
    assert {p.integration.slug: p.attempts for p in event.processings.all()} == {
        "first": 2,
        "second": 1,
    }
    assert AuditRecord.objects.filter(integration=second).count() == 1  # not re-run
    assert TARGET.effects("ch_1") == 1


@pytest.mark.django_db(transaction=True)
def test_a_delivery_that_posts_nothing_makes_no_sync_run(
    client: Client, stripe_conn: Connection, two_consumers: tuple[Integration, Integration]
) -> None:
    _, second = two_consumers
    second.delete()
    secret = stripe_conn.credentials["webhook_secret"]
    assert post(client, json.dumps(stripe_event("evt_1")), secret).status_code == 200
    assert SyncRun.objects.count() == 1  # posted: a run
    # The same payment announced by another event: a duplicate, linked to its event only.
    assert post(client, json.dumps(stripe_event("evt_2")), secret).status_code == 200
    assert SyncRun.objects.count() == 1
    duplicate = AuditRecord.objects.get(status=AuditRecord.Status.DUPLICATE)
    assert duplicate.run is None and duplicate.event.event_id == "evt_2"
    synced = AuditRecord.objects.get(status=AuditRecord.Status.SYNCED)
    assert synced.run is not None and synced.event.event_id == "evt_1"
    assert WebhookProcessing.objects.filter(state="done").count() == 2


@pytest.mark.parametrize("created", [253402300800, 2**39, 10**15, 0, -5, 1.5e9, True])
def test_an_event_time_out_of_range_is_refused_not_a_500(
    client: Client, stripe_conn: Connection, created: Any
) -> None:
    answer = post(
        client, json.dumps(stripe_event(created=created)), stripe_conn.credentials["webhook_secret"]
    )
    assert answer.status_code == 400
    assert not WebhookEvent.objects.exists()


BAD_OBJECTS = {
    "payment_intent.succeeded": [
        {"id": True},
        {"id": "pi_1", "amount": "100"},
        {"id": "pi_1", "amount": -(10**30)},
        {"id": "pi_1", "amount_received": 1.5},
        {"id": "pi_1", "metadata": True},
        {"id": "pi_1", "metadata": {"m3_invoice": 5}},
        {"id": "pi_1", "currency": 7},
    ],
    "charge.refunded": [
        {"id": "ch_1", "refunds": True},
        {"id": "ch_1", "refunds": {"data": [True]}},
        {"id": "ch_1", "refunds": {"data": [{"status": "succeeded"}]}},
        {"id": "ch_1", "refunds": {"data": [], "has_more": "no"}},
    ],
    "charge.dispute.created": [
        {"id": "dp_1", "currency": "usd"},
        {"id": "dp_1", "amount": -(10**30), "currency": "usd"},
        {"id": "dp_1", "amount": 100, "currency": "usd", "payment_intent": 5},
    ],
    "payout.paid": [
        {"id": "po_1", "amount": 100},
        {"id": "po_1", "amount": 100, "currency": "usd", "arrival_date": 10**13},
    ],
    "invoice.paid": [{"id": ["in_1"]}, {}],
}


@pytest.mark.parametrize(
    ("event_type", "obj"),
    [(t, o) for t, objects in BAD_OBJECTS.items() for o in objects],
    ids=lambda v: v if isinstance(v, str) else json.dumps(v)[:40],
)
def test_a_signed_event_whose_object_no_flow_can_read_is_refused_and_not_stored(
    client: Client, stripe_conn: Connection, event_type: str, obj: dict
) -> None:
    body = json.dumps(stripe_event(type=event_type, data={"object": obj}))
    answer = post(client, body, stripe_conn.credentials["webhook_secret"])
    assert answer.status_code == 400, answer.content
    assert "cannot be read" in answer.json()["error"]
    assert not WebhookEvent.objects.exists()


def test_well_formed_objects_of_each_type_are_accepted(
    client: Client, stripe_conn: Connection
) -> None:
    good = {
        "payment_intent.succeeded": {
            "id": "pi_1",
            "amount": 1000,
            "amount_received": 1000,
            "currency": "usd",
            "metadata": {"m3_invoice": "1001"},
            "latest_charge": None,
        },
        "charge.refunded": {
            "id": "ch_1",
            "payment_intent": "pi_1",
            "refunds": {
                "data": [{"id": "re_1", "status": "succeeded", "amount": 5}],
                "has_more": False,
            },
        },
        "charge.dispute.created": {
            "id": "dp_1",
            "amount": 5,
            "currency": "eur",
            "payment_intent": None,
        },
        "payout.paid": {
            "id": "po_1",
            "amount": 5,
            "currency": "eur",
            "arrival_date": int(time.time()),
        },
        "customer.created": {"id": "cus_1", "anything": [1, True]},
    }
    for n, (event_type, obj) in enumerate(good.items()):
        body = json.dumps(stripe_event(f"evt_{n}", type=event_type, data={"object": obj}))
        assert post(client, body, stripe_conn.credentials["webhook_secret"]).status_code == 200
    assert WebhookEvent.objects.count() == len(good)


@pytest.mark.django_db(transaction=True)
def test_a_stored_event_is_acknowledged_when_the_queue_cannot_be_reached(
    client: Client, stripe_conn: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    from syncs import services

    def down(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(services, "async_task", down)
    answer = post(client, json.dumps(stripe_event()), stripe_conn.credentials["webhook_secret"])
    assert answer.status_code == 200
    (event,) = WebhookEvent.objects.all()
    assert not event.processed  # stored; the reaper queues it again
    queued = []
    monkeypatch.setattr(services, "async_task", lambda *a, **k: queued.append(a))
    WebhookEvent.objects.update(queued_at=event.received_at.replace(year=2020))
    services.webhook_events_requeue()
    assert queued and queued[0][1] == event.pk


@pytest.mark.django_db(transaction=True)
def test_with_the_database_queue_an_event_and_its_task_are_one_write(
    client: Client, stripe_conn: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.db import OperationalError
    from django_q.conf import Conf
    from django_q.models import OrmQ

    from syncs import services

    if Conf.ORM != "default":
        pytest.skip("the task queue is Redis here: the task is queued after the commit")
    monkeypatch.setattr(Conf, "SYNC", False)  # queued for a worker, as in the embedded set-up
    secret = stripe_conn.credentials["webhook_secret"]
    assert post(client, json.dumps(stripe_event("evt_1")), secret).status_code == 200
    assert WebhookEvent.objects.count() == OrmQ.objects.count() == 1

    def refused(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("database is locked")

    monkeypatch.setattr(services, "async_task", refused)
    answer = post(client, json.dumps(stripe_event("evt_2")), secret)
    assert answer.status_code == 503  # the sender retries; nothing half-stored
    assert list(WebhookEvent.objects.values_list("event_id", flat=True)) == ["evt_1"]


@pytest.mark.django_db(transaction=True)
def test_a_new_signing_secret_takes_effect_at_the_next_delivery(
    client: Client, stripe_conn: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    from syncs import webhooks

    made: list[int] = []
    real = webhooks.client_for
    monkeypatch.setattr(webhooks, "client_for", lambda conn: made.append(conn.pk) or real(conn))
    old = stripe_conn.credentials["webhook_secret"]
    assert post(client, json.dumps(stripe_event("evt_1")), old).status_code == 200
    assert post(client, json.dumps(stripe_event("evt_2")), old).status_code == 200
    assert len(made) <= 1  # the verifier is kept between deliveries, not rebuilt for each
    stripe_conn.credentials = {**stripe_conn.credentials, "webhook_secret": "whsec_rotated"}
    stripe_conn.save()
    assert post(client, json.dumps(stripe_event("evt_3")), old).status_code == 400
    assert post(client, json.dumps(stripe_event("evt_4")), "whsec_rotated").status_code == 200
    assert set(WebhookEvent.objects.values_list("event_id", flat=True)) == {
        "evt_1",
        "evt_2",
        "evt_4",
    }


def test_the_database_out_of_reach_is_a_503_never_a_500(
    client: Client, stripe_conn: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.db import OperationalError

    from syncs import webhooks

    def gone(**kwargs: Any) -> None:
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(webhooks, "webhook_receive", gone)
    answer = post(client, json.dumps(stripe_event()), stripe_conn.credentials["webhook_secret"])
    assert answer.status_code == 503
    assert answer["Retry-After"]


def test_an_event_that_keeps_failing_is_parked_with_a_plain_reason(
    stripe_conn: Connection, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from syncs import services

    queued: list[Any] = []
    monkeypatch.setattr(services, "async_task", lambda *a, **k: queued.append(a))
    limit = settings.MLC["EVENT_MAX_ATTEMPTS"]
    event = WebhookEvent.objects.create(
        system="stripe",
        connection=stripe_conn,
        event_id="evt_bad",
        event_type="charge.succeeded",
        raw_body=json.dumps(stripe_event("evt_bad")),
        attempts=limit,
        error="Test payments: TypeError",
        queued_at=timezone.now() - timedelta(days=1),
    )
    assert services.webhook_events_requeue() == 0
    event.refresh_from_db()
    assert event.parked_at is not None and not queued
    assert event.error.startswith(f"Stopped retrying after {limit} tries")
    WebhookEvent.objects.filter(pk=event.pk).update(queued_at=timezone.now() - timedelta(days=2))
    assert services.webhook_events_requeue() == 0  # parked: never again by itself
    assert services.webhook_events_reprocess(event_ids=[event.pk]) == 1  # a person asks
    event.refresh_from_db()
    assert event.parked_at is None and event.attempts == 0  # retried again, from the start
