"""What ``prepare`` looks up, what ``map`` posts under, and what a check may do — each held to
the flow contract by the runner: a lookup of the wrong kind, a payload under another ledger key
than ``ledger_key`` builds, or a payload from a check fails the record and posts nothing."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from audit.models import AuditRecord, PostingLedger
from syncs.flows import FLOWS, Check, Flag, Flow, Lookups, Payload, Skip, SourceRecord, lookups_of
from syncs.flows.m3_journals import AccountCheck
from syncs.models import FieldMapping, Integration
from syncs.runner import Runner
from syncs.services import records_replay
from tests.syncs.test_finance_admin import _reviewer
from tests.syncs.testflow import SOURCE, TARGET, LedgerTestFlow

S = AuditRecord.Status


@dataclass(frozen=True)
class Balance(Lookups):
    """What a fake ERP still has open, and an account checked against its chart."""

    open: Decimal
    account: AccountCheck


class LookingUp(LedgerTestFlow):
    """The ledger test flow, judging each payment against what the target has open."""

    lookups = Balance
    reads_open: list[Decimal] = []

    def prepare(self, ctx: Any, record: SourceRecord) -> Balance:
        return Balance(self.reads_open.pop(0), AccountCheck("1930", True))

    def map(self, record: SourceRecord, mappings: Any) -> Payload | Flag | Skip:
        found = lookups_of(record, Balance)
        if Decimal(record.data["amount_cents"]) / 100 > found.open:
            return Flag(f"more than the {found.open} open")
        return super().map(record, mappings)


class ForgetsItsLookups(LookingUp):
    def prepare(self, ctx: Any, record: SourceRecord) -> Any:
        return None


class PostsUnderAnotherKey(LedgerTestFlow):
    def map(self, record: SourceRecord, mappings: Any) -> Payload | Flag | Skip:
        mapped = super().map(record, mappings)
        assert isinstance(mapped, Payload)
        return Payload(mapped.data, ledger_key=f"by-hand-{record.data['id']}")


class ChecksAndPosts(Check):
    """A check that, wrongly, asks to post."""

    key = "test.ledger"
    label = "Test: a check"
    source_kind = "stripe"
    target_kind = "infor_m3"
    stream = "payments"

    def extract(self, ctx: Any) -> Any:
        for row in SOURCE:
            yield SourceRecord(row["id"], row)

    def examine(self, record: SourceRecord, mappings: Any) -> Any:
        return Payload({"x": 1}, ledger_key=None)


def pay(n: int, cents: int) -> dict[str, Any]:
    return {
        "id": f"ch_{n}",
        "ts": f"2026-11-0{n}T00:00",
        "invoice": f"INV{n}",
        "amount_cents": cents,
        "account": "4000",
    }


@pytest.fixture
def mapped(integration: Integration) -> Integration:
    FieldMapping.objects.create(
        integration=integration, kind="gl_account", source_value="4000", target_value="1930"
    )
    return integration


def run_as(
    monkeypatch: pytest.MonkeyPatch, integration: Integration, flow: type[Flow]
) -> list[AuditRecord]:
    monkeypatch.setitem(FLOWS, integration.flow, flow)
    run = Runner(Integration.objects.get(pk=integration.pk), trigger="manual").run()
    return list(run.records.order_by("source_key"))


def test_lookups_are_stored_beside_what_was_read_and_looked_up_again_on_replay(
    monkeypatch: pytest.MonkeyPatch, mapped: Integration
) -> None:
    SOURCE.extend([pay(1, 500), pay(2, 900)])
    LookingUp.reads_open = [Decimal("10.00"), Decimal("5.00")]
    first, second = run_as(monkeypatch, mapped, LookingUp)
    assert (first.status, second.status) == (S.SYNCED, S.FLAGGED)
    account = {"mapped": "1930", "in_chart": True, "name": ""}
    assert second.looked_up == {"open": "5.00", "account": account}
    assert "open" not in second.source_payload  # what was read is kept as it was read
    reviewer = Client()
    reviewer.force_login(_reviewer())
    page = reviewer.get(f"/admin/audit/reviewitem/{second.pk}/change/").content.decode()
    judged = page.split("What it was judged against", 1)[1].split("</fieldset>", 1)[0]
    assert "5.00" in judged and "1930" in judged
    LookingUp.reads_open = [Decimal("20.00")]  # the ERP has more open now
    (replayed,) = records_replay(record_ids=[second.pk])
    outcome = replayed.records.get()
    assert outcome.status == S.SYNCED and outcome.looked_up["open"] == "20.00"
    assert set(TARGET.posts) == {"ch_1", "ch_2"}


def test_a_record_prepared_without_its_lookups_fails_and_nothing_is_posted(
    monkeypatch: pytest.MonkeyPatch, mapped: Integration
) -> None:
    SOURCE.append(pay(1, 500))
    (record,) = run_as(monkeypatch, mapped, ForgetsItsLookups)
    assert record.status == S.FAILED and TARGET.posts == {}
    assert not PostingLedger.objects.exists()


def test_a_payload_under_another_key_than_the_flow_s_ledger_key_is_not_posted(
    monkeypatch: pytest.MonkeyPatch, mapped: Integration
) -> None:
    SOURCE.append(pay(1, 500))
    (record,) = run_as(monkeypatch, mapped, PostsUnderAnotherKey)
    assert record.status == S.FAILED and "not under its ledger key" in record.detail
    assert TARGET.posts == {} and not PostingLedger.objects.exists()


def test_a_check_posts_nothing_even_when_it_asks_to(
    monkeypatch: pytest.MonkeyPatch, mapped: Integration
) -> None:
    SOURCE.append(pay(1, 500))
    (record,) = run_as(monkeypatch, mapped, ChecksAndPosts)
    assert record.status == S.FAILED and "is a check" in record.detail
    assert TARGET.posts == {} and not PostingLedger.objects.exists()
    with pytest.raises(TypeError):
        ChecksAndPosts().load(None, Payload({}, None), None)  # type: ignore[arg-type]


def test_map_refuses_a_record_without_its_lookups() -> None:
    with pytest.raises(TypeError, match="without its Balance"):
        lookups_of(SourceRecord("ch_1", {}), Balance)


@pytest.mark.parametrize("flow", sorted(FLOWS.values(), key=lambda f: f.key), ids=lambda f: f.key)
def test_a_flow_that_looks_up_declares_what_and_one_that_declares_looks_up(
    flow: type[Flow],
) -> None:
    assert (flow.prepare is not Flow.prepare) == (flow.lookups is not None)
    if flow.lookups is not None:
        assert issubclass(flow.lookups, Lookups) and flow.lookups.__dataclass_params__.frozen
