"""The flow contract the runner keeps: read windows computed from the cursor, the bulk load
path (one call per chunk, each record still claimed and confirmed), and the acknowledge hook."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from audit.models import AuditRecord, PostingLedger
from connections.providers.errors import OutcomeUnknown
from syncs.flows import (
    FLOWS,
    FlowContext,
    LoadResult,
    Payload,
    Posting,
    ReadWindow,
    SourceRecord,
    Unit,
)
from syncs.models import Cursor, FieldMapping, Integration, SyncRun
from syncs.runner import Runner
from tests.syncs.testflow import SOURCE, TARGET, LedgerTestFlow

S = AuditRecord.Status
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


# -- read windows -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("window", "cursor", "overlap", "start"),
    [
        (ReadWindow("LMTS", Unit.EPOCH_MS, overlap=timedelta(minutes=5)), "", None, None),
        (
            ReadWindow("LMTS", Unit.EPOCH_MS, overlap=timedelta(minutes=5)),
            str(int(NOW.timestamp() * 1000)),
            None,
            int(NOW.timestamp() * 1000) - 300_000,
        ),
        (ReadWindow("IVDT", Unit.DATE, overlap=timedelta(days=7)), "20261122", None, "20261115"),
        (
            ReadWindow("IVDT", Unit.DATE, overlap=timedelta(days=7)),
            "20261122",
            timedelta(days=1),
            "20261121",
        ),
        (
            ReadWindow("created", Unit.EPOCH_S, reach=timedelta(days=30)),
            "",
            None,
            int((NOW - timedelta(days=30)).timestamp()),
        ),
        (  # a cursor older than the source reaches: start where it still reaches
            ReadWindow("created", Unit.EPOCH_S, reach=timedelta(days=30)),
            str(int((NOW - timedelta(days=90)).timestamp())),
            None,
            int((NOW - timedelta(days=30)).timestamp()),
        ),
        (ReadWindow("ts", Unit.ISO), "2026-11-22T12:00:00", None, "2026-11-22T11:55:00"),
        (ReadWindow("ts", Unit.ISO), "not a time", None, None),  # unreadable: from the start
    ],
)
def test_the_window_starts_at_the_cursor_less_the_overlap(
    window: ReadWindow, cursor: str, overlap: timedelta | None, start: Any
) -> None:
    assert window.start(cursor, now=NOW, overlap=overlap) == start


def test_the_runner_gives_the_flow_its_window_and_honours_the_overlap_setting(
    integration: Integration,
) -> None:
    seen: list[Any] = []

    class Watching(LedgerTestFlow):
        window = ReadWindow("ts", Unit.ISO, overlap=timedelta(hours=1))

        def extract(self, ctx: Any) -> Any:
            seen.append(ctx.window_start)
            return iter(())

    Cursor.objects.create(integration=integration, stream="payments", value="2026-11-20T10:00:00")
    Runner(integration, trigger="manual", flow=Watching()).run()
    integration.settings = {"overlap_seconds": 60}
    integration.save()
    Runner(integration, trigger="manual", flow=Watching(options=integration.settings)).run()
    assert seen == ["2026-11-20T09:00:00", "2026-11-20T09:59:00"]


def test_a_source_without_record_watermarks_moves_the_cursor_to_the_run_start(
    integration: Integration,
) -> None:
    class FromRunStart(LedgerTestFlow):
        """A source that filters by change time but returns none per record (like CRS610MI)."""

        window = ReadWindow("LMTS", Unit.EPOCH_MS, from_run_start=True)

        def extract(self, ctx: Any) -> Any:
            assert ctx.window_start is None or isinstance(ctx.window_start, int)
            for row in SOURCE:
                yield SourceRecord(row["id"], row)  # no watermark of its own

    FieldMapping.objects.create(
        integration=integration, kind="gl_account", source_value="x", target_value="1930"
    )
    before = int(datetime.now(UTC).timestamp() * 1000)
    SOURCE.append(
        {"id": "ch_1", "ts": "2026-11-01", "invoice": "I", "amount_cents": 1, "account": "x"}
    )
    first = Runner(integration, trigger="manual", flow=FromRunStart()).run()
    assert first.status == SyncRun.Status.SUCCEEDED and first.synced == 1
    value = Cursor.objects.get(integration=integration, stream="payments").value
    assert before <= int(value) <= before + 60_000
    TARGET.transient.add("ch_2")  # a retryable failure: the cursor must not move
    SOURCE.append(
        {"id": "ch_2", "ts": "2026-11-02", "invoice": "I", "amount_cents": 1, "account": "x"}
    )
    second = Runner(integration, trigger="manual", flow=FromRunStart()).run()
    assert (second.duplicate, second.failed) == (1, 1) and not second.error_summary
    assert Cursor.objects.get(integration=integration, stream="payments").value == value


# -- the bulk load path -------------------------------------------------------------------


class BulkFlow(LedgerTestFlow):
    """Posts up to four payments per call, like the M3 bulk execute."""

    key = "test.bulk"
    chunk_size = 4
    calls: list[int] = []
    whole_call_fails: Exception | None = None

    def load_many(
        self, ctx: FlowContext, items: Sequence[tuple[Payload, Posting | None]]
    ) -> list[LoadResult | Exception]:
        BulkFlow.calls.append(len(items))
        if BulkFlow.whole_call_fails is not None:
            raise BulkFlow.whole_call_fails
        return super().load_many(ctx, items)


def use_flow(integration: Integration, flow: type, monkeypatch: pytest.MonkeyPatch) -> Integration:
    """Point the integration at ``flow`` (registered for this test), with account x mapped."""
    monkeypatch.setitem(FLOWS, flow.key, flow)
    integration.flow = flow.key
    integration.save()
    FieldMapping.objects.create(
        integration=integration, kind="gl_account", source_value="x", target_value="1930"
    )
    return integration


@pytest.fixture
def bulk(integration: Integration, monkeypatch: pytest.MonkeyPatch) -> Integration:
    BulkFlow.calls, BulkFlow.whole_call_fails = [], None
    return use_flow(integration, BulkFlow, monkeypatch)


def payments(*numbers: int, **extra: Any) -> list[dict[str, Any]]:
    return [
        {
            "id": f"ch_{n}",
            "ts": f"2026-11-{n:02d}",
            "invoice": f"I{n}",
            "amount_cents": n * 100,
            "account": "x",
            **extra,
        }
        for n in numbers
    ]


def test_a_chunk_is_one_call_and_every_record_is_claimed_and_confirmed(bulk: Integration) -> None:
    SOURCE.extend(payments(1, 2, 3, 4, 5, 6, 7, 8, 9, 10))
    run = Runner(bulk, trigger="manual").run()
    assert BulkFlow.calls == [4, 4, 2]
    assert run.synced == 10 and run.status == SyncRun.Status.SUCCEEDED
    assert PostingLedger.objects.filter(state="confirmed").count() == 10
    assert AuditRecord.objects.filter(status=S.SYNCED, ledger__isnull=False).count() == 10
    assert Cursor.objects.get(integration=bulk).value == "2026-11-10"
    Cursor.objects.filter(integration=bulk).delete()  # read everything again
    again = Runner(bulk, trigger="manual").run()  # …all of it is in the ledger already
    assert again.duplicate == 10 and BulkFlow.calls == [4, 4, 2]
    assert sum(TARGET.effects(f"ch_{n}") for n in range(1, 11)) == 10


def test_one_refused_write_in_a_chunk_fails_alone(bulk: Integration) -> None:
    SOURCE.extend(payments(1, 2, 3, 4))
    TARGET.refuse.add("ch_2")
    run = Runner(bulk, trigger="manual").run()
    assert (run.synced, run.failed) == (3, 1)
    refused = PostingLedger.objects.get(natural_key="ch_2")
    assert refused.state == "failed"
    assert Cursor.objects.get(integration=bulk).value == "2026-11-04"  # a refusal: not retryable


def test_a_whole_chunk_with_an_unknown_outcome_is_asked_about_record_by_record(
    bulk: Integration,
) -> None:
    SOURCE.extend(payments(1, 2, 3))
    TARGET.posts["ch_2"] = ["R-before"]  # the target got ch_2 before the answer was lost
    BulkFlow.whole_call_fails = OutcomeUnknown("the bulk answer was lost")
    first = Runner(bulk, trigger="manual").run()
    assert first.failed == 3 and all(r.retryable for r in first.records.all())
    assert set(PostingLedger.objects.values_list("state", flat=True)) == {"pending"}
    assert not Cursor.objects.filter(integration=bulk).exists()  # read again next time
    BulkFlow.whole_call_fails = None
    second = Runner(bulk, trigger="manual").run()
    assert second.synced == 3
    recovered = second.records.get(source_key="ch_2")
    assert recovered.target_key == "R-before" and "interrupted" in recovered.reason
    assert TARGET.effects("ch_2") == 1 and BulkFlow.calls == [3, 2]  # ch_2 not posted again


def test_the_same_write_twice_in_one_read_is_posted_once(bulk: Integration) -> None:
    rows = payments(1, 2)
    SOURCE.extend([rows[0], rows[1], {**rows[0], "ts": "2026-11-03"}])
    run = Runner(bulk, trigger="manual").run()
    assert (run.synced, run.duplicate) == (2, 1)
    assert TARGET.effects("ch_1") == 1 and BulkFlow.calls == [2]


def test_refused_credentials_stop_the_run_after_the_chunk_is_recorded(bulk: Integration) -> None:
    SOURCE.extend(payments(1, 2, 3, 4, 5, 6))
    TARGET.auth_fail = True
    run = Runner(bulk, trigger="manual").run()
    assert run.status == SyncRun.Status.FAILED and "credentials refused" in run.error_summary
    assert run.failed == 4 and BulkFlow.calls == [4]  # the second chunk is never sent
    assert TARGET.calls == 1  # and within the chunk, the first refusal stops the others


# -- acknowledge --------------------------------------------------------------------------


class AckFlow(LedgerTestFlow):
    key = "test.ack"
    acknowledged: list[list[str]] = []
    fail = False

    def acknowledge(self, ctx: Any, records: Sequence[Any]) -> None:
        if AckFlow.fail:
            raise OSError("archive folder is read-only")
        AckFlow.acknowledged.append([r.source_key for r in records])


@pytest.fixture
def acking(integration: Integration, monkeypatch: pytest.MonkeyPatch) -> Integration:
    AckFlow.acknowledged, AckFlow.fail = [], False
    return use_flow(integration, AckFlow, monkeypatch)


def test_the_source_is_told_which_records_are_done(acking: Integration) -> None:
    SOURCE.extend(payments(1, 2, 3, 4))
    SOURCE.append({**payments(5)[0], "account": "unmapped"})
    TARGET.transient.add("ch_2")  # read again next run: not done
    TARGET.refuse.add("ch_3")  # refused: in the review queue, done as far as the source goes
    run = Runner(acking, trigger="manual").run()
    assert run.status == SyncRun.Status.PARTIAL
    assert AckFlow.acknowledged == [["ch_1", "ch_3", "ch_4", "ch_5"]]


def test_an_acknowledge_failure_is_a_warning_not_a_loss(acking: Integration) -> None:
    SOURCE.extend(payments(1))
    AckFlow.fail = True
    run = Runner(acking, trigger="manual").run()
    assert run.synced == 1 and run.status == SyncRun.Status.PARTIAL
    assert "could not be told" in run.error_summary and "read-only" in run.error_summary
    assert PostingLedger.objects.get().state == "confirmed"
