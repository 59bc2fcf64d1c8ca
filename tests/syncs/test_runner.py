"""The runner: partial failure, cursor safety, the posting ledger, replay and worker races."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from audit.models import AuditRecord, PostingLedger
from syncs.models import Cursor, FieldMapping, Integration, SyncRun
from syncs.runner import Runner
from syncs.services import integration_run, records_replay
from tests.conftest import requires_postgres
from tests.syncs.testflow import SOURCE, TARGET

S = AuditRecord.Status


def pay(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"ch_{n}",
        "ts": f"2026-11-0{n}T00:00",
        "invoice": f"INV{n}",
        "amount_cents": 1000 * n,
        "account": "4000",
        **extra,
    }


def statuses(run: SyncRun) -> dict[str, str]:
    return {r.source_key: r.status for r in run.records.all()}


def cursor(integration: Integration) -> str:
    row = Cursor.objects.filter(integration=integration, stream="payments").first()
    return row.value if row else ""


@pytest.fixture
def mapped(integration: Integration) -> Integration:
    FieldMapping.objects.create(
        integration=integration, kind="gl_account", source_value="4000", target_value="1930-AR"
    )
    return integration


def run(integration: Integration, trigger: str = "manual") -> SyncRun:
    return Runner(Integration.objects.get(pk=integration.pk), trigger=trigger).run()


def test_a_failing_record_does_not_stop_the_run(mapped: Integration) -> None:
    TARGET.refuse.add("ch_3")
    SOURCE.extend(
        [
            pay(1),
            pay(2, account="9999"),
            pay(3),
            pay(4, amount_cents="n/a"),
            pay(5, status="draft"),
            pay(6),
        ]
    )
    result = run(mapped)
    assert statuses(result) == {
        "ch_1": S.SYNCED,
        "ch_2": S.FLAGGED,
        "ch_3": S.FAILED,
        "ch_4": S.FAILED,
        "ch_5": S.SKIPPED,
        "ch_6": S.SYNCED,
    }
    assert (result.status, result.total, result.done) == (SyncRun.Status.PARTIAL, 6, 6)
    assert (result.synced, result.flagged, result.failed, result.skipped) == (2, 1, 2, 1)
    assert set(TARGET.posts) == {"ch_1", "ch_6"}
    flagged = result.records.get(source_key="ch_2")
    assert "No GL mapping for account 9999" in flagged.reason and flagged.sent_payload is None
    refused = result.records.get(source_key="ch_3")
    assert "closed" in refused.reason and not refused.retryable
    assert PostingLedger.objects.get(natural_key="ch_3").state == PostingLedger.State.FAILED
    assert "Could not map" in result.records.get(source_key="ch_4").reason
    synced = result.records.get(source_key="ch_1")
    assert synced.sent_payload == {"invoice": "INV1", "amount": "10.00", "gl": "1930-AR"}
    assert synced.target_key == TARGET.posts["ch_1"][0]
    assert synced.ledger.state == PostingLedger.State.CONFIRMED
    # Permanent failures do not hold the cursor: they wait in the review queue for replay.
    assert cursor(mapped) == pay(6)["ts"]


def test_cursor_stops_at_a_retryable_failure_and_the_next_run_resumes(mapped: Integration) -> None:
    SOURCE.extend(pay(n) for n in range(1, 6))
    TARGET.transient.add("ch_3")
    first = run(mapped)
    assert statuses(first)["ch_3"] == S.FAILED and first.records.get(source_key="ch_3").retryable
    assert cursor(mapped) == pay(2)["ts"]  # committed past ch_2 only
    assert set(TARGET.posts) == {"ch_1", "ch_2", "ch_4", "ch_5"}

    TARGET.transient.clear()
    second = run(mapped)
    assert statuses(second) == {
        "ch_2": S.DUPLICATE,
        "ch_3": S.SYNCED,
        "ch_4": S.DUPLICATE,
        "ch_5": S.DUPLICATE,
    }
    assert cursor(mapped) == pay(5)["ts"]
    assert all(TARGET.effects(f"ch_{n}") == 1 for n in range(1, 6))


def test_a_crash_while_reading_keeps_the_cursor_at_the_last_committed_record(
    mapped: Integration,
) -> None:
    SOURCE.extend([pay(1), pay(2), pay(3, explode=True), pay(4)])
    result = run(mapped)
    assert result.status == SyncRun.Status.FAILED
    assert "source went away" in result.error_summary
    assert cursor(mapped) == pay(2)["ts"]
    SOURCE[2].pop("explode")
    again = run(mapped)
    assert statuses(again) == {"ch_2": S.DUPLICATE, "ch_3": S.SYNCED, "ch_4": S.SYNCED}


def test_a_lost_response_is_resolved_by_asking_the_target_not_by_posting_again(
    mapped: Integration,
) -> None:
    SOURCE.append(pay(1))
    TARGET.lose_response.add("ch_1")
    first = run(mapped)
    record = first.records.get()
    assert record.status == S.FAILED and record.retryable
    entry = PostingLedger.objects.get(natural_key="ch_1")
    assert entry.state == PostingLedger.State.PENDING and entry.lease_owner == ""
    assert TARGET.effects("ch_1") == 1  # the post went through; only the answer was lost

    second = run(mapped)
    record = second.records.get()
    assert record.status == S.SYNCED and "not posted again" in record.reason
    assert TARGET.effects("ch_1") == 1 and TARGET.calls == 1
    entry.refresh_from_db()
    assert entry.state == PostingLedger.State.CONFIRMED and entry.remote_id == "R1"


def test_a_worker_killed_mid_post_is_recovered_after_its_lease(mapped: Integration) -> None:
    SOURCE.append(pay(1))
    TARGET.post("ch_1", {"invoice": "INV1"}, None)  # the dead worker's post reached the target
    TARGET.calls = 0
    PostingLedger.objects.create(
        integration=mapped,
        connection=mapped.target,
        target="fake.receipt",
        natural_key="ch_1",
        lease_owner="dead:1",
        lease_expires_at=timezone.now() - timedelta(seconds=1),
    )
    result = run(mapped)
    assert result.records.get().status == S.SYNCED
    assert TARGET.effects("ch_1") == 1 and TARGET.calls == 0


def test_a_live_lease_held_by_another_worker_is_not_posted_over(mapped: Integration) -> None:
    SOURCE.append(pay(1))
    PostingLedger.objects.create(
        integration=mapped,
        connection=mapped.target,
        target="fake.receipt",
        natural_key="ch_1",
        lease_owner="other:1",
        lease_expires_at=timezone.now() + timedelta(minutes=5),
    )
    runner = Runner(mapped, trigger="manual")
    runner.busy_wait_seconds = 0.3
    record = runner.run().records.get()
    assert record.status == S.FAILED and record.retryable and "Another worker" in record.reason
    assert TARGET.calls == 0 and cursor(mapped) == ""


def test_refused_credentials_stop_the_run(mapped: Integration) -> None:
    SOURCE.extend([pay(1), pay(2), pay(3)])
    TARGET.auth_fail = True
    result = run(mapped)
    assert result.status == SyncRun.Status.FAILED and "credentials refused" in result.error_summary
    assert result.done == 1 and cursor(mapped) == ""


def test_replay_after_a_refusal_posts_with_a_new_idempotency_key(mapped: Integration) -> None:
    SOURCE.append(pay(1))
    TARGET.refuse.add("ch_1")
    original = run(mapped).records.get()
    TARGET.refuse.clear()

    (replay_run,) = records_replay(record_ids=[original.pk], requested_by="ana")
    replayed = replay_run.records.get()
    assert replay_run.trigger == SyncRun.Trigger.REPLAY
    assert (replayed.status, replayed.replay_of_id, replayed.attempt) == (S.SYNCED, original.pk, 2)
    original.refresh_from_db()
    assert original.resolved_by == "ana" and f"#{replayed.pk}" in original.resolution
    assert TARGET.idempotency_keys[0] != TARGET.idempotency_keys[1]
    assert TARGET.idempotency_keys[1].endswith(":2")
    # A second click finds nothing left to replay, and nothing is posted twice.
    assert records_replay(record_ids=[original.pk]) == []
    assert TARGET.effects("ch_1") == 1


def test_a_flagged_record_replays_once_its_mapping_exists(integration: Integration) -> None:
    SOURCE.append(pay(1))
    flagged = run(integration).records.get()
    assert flagged.status == S.FLAGGED and TARGET.calls == 0
    FieldMapping.objects.create(
        integration=integration, kind="gl_account", source_value="4000", target_value="1930"
    )
    (replay_run,) = records_replay(record_ids=[flagged.pk])
    assert replay_run.records.get().sent_payload["gl"] == "1930"
    assert TARGET.effects("ch_1") == 1


def test_replaying_a_record_already_posted_is_a_duplicate(mapped: Integration) -> None:
    SOURCE.append(pay(1))
    TARGET.lose_response.add("ch_1")
    failed = run(mapped).records.get()
    PostingLedger.objects.filter(natural_key="ch_1").update(
        state=PostingLedger.State.CONFIRMED, remote_id="R1"
    )
    (replay_run,) = records_replay(record_ids=[failed.pk])
    assert replay_run.records.get().status == S.DUPLICATE
    assert TARGET.effects("ch_1") == 1


def test_progress_is_recorded(mapped: Integration) -> None:
    SOURCE.extend(pay(n) for n in range(1, 4))
    result = run(mapped)
    result.refresh_from_db()
    assert (result.total, result.done, result.progress_percent) == (3, 3, 100)
    assert result.started_at <= result.finished_at


def _race(integration_ids: list[int], target: Any) -> list[Any]:
    """Run ``target`` for each integration in its own thread, all released at once."""
    results: list[Any] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(integration_ids))

    def work(integration_id: int) -> None:
        from django.db import connection

        try:
            integ = Integration.objects.get(pk=integration_id)
            barrier.wait()
            results.append(target(integ))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(pk,)) for pk in integration_ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    return results


@pytest.mark.django_db(transaction=True)
def test_two_integrations_racing_into_one_target_post_each_record_exactly_once(
    mapped: Integration,
) -> None:
    copy = Integration.objects.create(
        name="Copy", slug="copy", flow=mapped.flow, source=mapped.source, target=mapped.target
    )
    copy.mappings.create(kind="gl_account", source_value="4000", target_value="1930-AR")
    SOURCE.extend(pay(n) for n in range(1, 7))
    TARGET.delay = 0.05  # a slow ERP widens the window between claim and confirm
    runs = _race([mapped.pk, copy.pk], lambda integ: Runner(integ, trigger="schedule").run())
    assert all(TARGET.effects(f"ch_{n}") == 1 for n in range(1, 7)), TARGET.posts
    assert TARGET.calls == 6
    outcomes = AuditRecord.objects.filter(run__in=runs)
    assert outcomes.filter(status=S.SYNCED).count() == 6
    assert outcomes.filter(status=S.DUPLICATE).count() == 6
    assert PostingLedger.objects.filter(state=PostingLedger.State.CONFIRMED).count() == 6


@pytest.mark.django_db(transaction=True)
def test_two_runs_of_one_integration_never_overlap(mapped: Integration) -> None:
    SOURCE.extend(pay(n) for n in range(1, 4))
    TARGET.delay = 0.1
    runs = _race(
        [mapped.pk] * 4,
        lambda integ: integration_run(integration=integ, trigger="schedule"),
    )
    statuses = sorted(r.status for r in runs)
    assert statuses.count(SyncRun.Status.SUCCEEDED) == 1, statuses
    assert statuses.count(SyncRun.Status.SKIPPED) == 3
    assert AuditRecord.objects.count() == 3  # no needless duplicate rows from parallel runs


@pytest.mark.django_db(transaction=True)
def test_replay_clicked_twice_at_once_posts_once(mapped: Integration) -> None:
    SOURCE.append(pay(1))
    TARGET.refuse.add("ch_1")
    failed = Runner(mapped, trigger="manual").run().records.get()
    TARGET.refuse.clear()
    TARGET.delay = 0.1
    _race([mapped.pk, mapped.pk], lambda integ: records_replay(record_ids=[failed.pk]))
    assert TARGET.effects("ch_1") == 1
    replays = AuditRecord.objects.filter(replay_of=failed)
    assert sorted(replays.values_list("status", flat=True)) in (
        [S.DUPLICATE, S.SYNCED],
        [S.SYNCED],
    )


def test_secrets_in_source_records_never_reach_the_audit_trail(mapped: Integration) -> None:
    api_key = mapped.source.credentials["api_key"]
    SOURCE.append(pay(1, note=f"paid with key {api_key}", client_secret="pi_secret_abc"))
    record = run(mapped).records.get()
    stored = str(record.source_payload)
    assert api_key not in stored and "pi_secret_abc" not in stored
    assert record.source_payload["client_secret"] == "***"


def test_an_unexpected_error_during_replay_ends_the_run_as_failed(
    mapped: Integration, monkeypatch: pytest.MonkeyPatch
) -> None:
    SOURCE.append(pay(1))
    TARGET.refuse.add("ch_1")
    failed = run(mapped).records.get()

    def broken_claim(**_: Any) -> None:
        raise RuntimeError("database went away")

    monkeypatch.setattr("syncs.run.posting.ledger.claim", broken_claim)
    (replay_run,) = records_replay(record_ids=[failed.pk])
    assert replay_run.status == SyncRun.Status.FAILED
    assert "database went away" in replay_run.error_summary and replay_run.finished_at


def test_two_integrations_over_the_same_connections_post_each_payment_once(
    mapped: Integration,
) -> None:
    copy = Integration.objects.create(
        name="Copy", slug="copy", flow=mapped.flow, source=mapped.source, target=mapped.target
    )
    copy.mappings.create(kind="gl_account", source_value="4000", target_value="1930-AR")
    SOURCE.extend([pay(1), pay(2), pay(3)])
    first, second = run(mapped), run(copy)
    assert (first.synced, second.synced, second.duplicate) == (3, 0, 3)
    assert all(TARGET.effects(f"ch_{n}") == 1 for n in (1, 2, 3))
    assert PostingLedger.objects.count() == 3
    assert set(PostingLedger.objects.values_list("integration", flat=True)) == {mapped.pk}


def _kill_backend(pid: int) -> None:
    """What a PostgreSQL restart does to one connection: the server ends it."""
    import psycopg
    from django.db import connection

    s = connection.settings_dict
    with psycopg.connect(
        host=s["HOST"] or "127.0.0.1",
        port=s["PORT"] or 5432,
        user=s["USER"],
        password=s["PASSWORD"] or None,
        dbname=s["NAME"],
        autocommit=True,
    ) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_a_run_whose_database_connection_dies_reconnects_and_finishes(
    integration: Integration, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.db import connection

    FieldMapping.objects.create(
        integration=integration, kind="gl_account", source_value="40", target_value="1930"
    )
    for n in range(3):
        SOURCE.append(
            {"id": f"ch_{n}", "ts": f"2026-11-0{n + 1}", "invoice": f"I{n}", "amount_cents": 100}
            | {"account": "40"}
        )
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    real_post = TARGET.post
    killed: list[int] = []

    def post(key: str, data: dict[str, Any], idempotency_key: str | None) -> str:
        if not killed and TARGET.calls >= 1:  # the second write: the database goes away
            killed.append(pid)
            _kill_backend(pid)
        return real_post(key, data, idempotency_key)

    monkeypatch.setattr(TARGET, "post", post)
    run = Runner(integration, trigger="manual").run()
    assert killed
    run.refresh_from_db()
    assert (run.status, run.synced, run.failed) == ("succeeded", 3, 0)
    assert AuditRecord.objects.filter(status=S.SYNCED).count() == 3
    assert sum(TARGET.effects(f"ch_{n}") for n in range(3)) == 3  # nothing posted twice


def test_a_replay_that_meets_an_outage_leaves_the_item_s_open_problem_as_it_was(
    integration: Integration,
) -> None:
    from syncs.services import record_state

    SOURCE.append(pay(1, account="7777"))
    run(integration)
    flag = AuditRecord.objects.get(source_key="ch_1")
    assert flag.status == S.FLAGGED and flag.fix_kind == "gl_account"
    FieldMapping.objects.create(
        integration=integration, kind="gl_account", source_value="7777", target_value="1930"
    )
    TARGET.transient.add("ch_1")  # the target (or the limiter in front of it) is out of reach
    records_replay(record_ids=[flag.pk], requested_by="rita")
    flag.refresh_from_db()
    assert flag.resolved_at is None and flag.replay_requested_at is None  # still the item
    attempt = flag.replays.get()
    assert attempt.status == S.FAILED and attempt.resolved_at is not None  # not a new item
    state = record_state(record=flag)
    assert state["state"] == "waiting" and "could not finish" in state["label"]
    open_items = AuditRecord.objects.filter(source_key="ch_1", resolved_at=None)
    assert list(open_items) == [flag]  # its reason and fix stand
    TARGET.transient.clear()
    records_replay(record_ids=[flag.pk], requested_by="rita")
    flag.refresh_from_db()
    assert flag.resolved_at is not None
    assert flag.replays.filter(status=S.SYNCED).exists()


def test_an_outage_in_a_later_run_never_replaces_a_record_s_open_flag(
    integration: Integration,
) -> None:
    SOURCE.append(pay(1, account="7777"))
    run(integration)
    flag = AuditRecord.objects.get(source_key="ch_1")
    assert flag.status == S.FLAGGED and flag.fix_kind == "gl_account"
    FieldMapping.objects.create(
        integration=integration, kind="gl_account", source_value="7777", target_value="1930"
    )
    Cursor.objects.filter(integration=integration).delete()  # the next run reads it again
    TARGET.transient.add("ch_1")  # …while the target (or the limiter before it) is away
    run(integration)
    (open_item,) = AuditRecord.objects.filter(source_key="ch_1", resolved_at=None)
    assert open_item.pk == flag.pk and open_item.status == S.FLAGGED  # its fix still shown
    assert open_item.times_seen == 2
    TARGET.transient.clear()  # back: the person replays the item, and it posts once
    records_replay(record_ids=[flag.pk])
    flag.refresh_from_db()
    assert flag.resolved_at is not None and TARGET.effects("ch_1") == 1
