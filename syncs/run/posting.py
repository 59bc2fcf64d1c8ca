"""Posting one record, the ledger's way: decide what needs no write, claim the natural key
(new keys a batch at a time), find again what an interrupted attempt may have posted, load, and
turn what the target answered into an outcome.  A mixin of the runner: it reads the run's
integration, flow, owner and lease, and describes errors with its redactor."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from django.db import transaction

from audit import ledger
from audit.models import AuditRecord, PostingLedger
from connections.providers import plain
from connections.providers.errors import ApiError, Resolution, resolution_of
from syncs.flows import (
    Flag,
    FlowContext,
    LoadResult,
    Payload,
    Posting,
    Skip,
    Superseded,
    Wait,
)
from syncs.run.pipeline import Item, Outcome

if TYPE_CHECKING:
    from syncs.flows import Flow
    from syncs.models import Integration

logger = logging.getLogger(__name__)

Status = AuditRecord.Status
BUSY_POLL_SECONDS = 0.2


def posting_of(entry: PostingLedger) -> Posting:
    """What a flow is told of its claim on a write."""
    return Posting(entry.idempotency_key, entry.pk, entry.generation, entry.attempted_at)


class PostingSteps:
    """The runner's posting steps (see the module docstring)."""

    integration: Integration
    flow: Flow
    owner: str
    lease_seconds: Any
    busy_wait_seconds: Any

    def _describe(self, exc: BaseException) -> str:
        raise NotImplementedError

    def _decide(self, ctx: FlowContext, item: Item) -> None:
        """Give ``item`` its outcome now, or leave it None: it is to be loaded."""
        mapped = item.mapped
        if isinstance(mapped, Exception):
            detail = self._describe(mapped)
            if item.prepare_failed:
                item.outcome = Outcome(
                    Status.FAILED,
                    plain.unreadable(mapped),
                    retryable=resolution_of(mapped) is not Resolution.REVIEW,
                    error=mapped,
                    detail=detail,
                )
            else:
                reason = (
                    "Could not map this record into what the target expects (a value in it is "
                    "missing or not what was expected); the technical detail is below."
                )
                item.outcome = Outcome(Status.FAILED, reason, detail=detail)
        elif isinstance(mapped, Flag):
            item.outcome = Outcome(
                Status.FLAGGED, mapped.reason, fix=mapped.fix, advice=mapped.advice, see=mapped.see
            )
        elif isinstance(mapped, Skip):
            item.outcome = Outcome(Status.SKIPPED, mapped.reason)
        elif isinstance(mapped, Wait):
            item.outcome = Outcome(Status.FAILED, mapped.reason, retryable=True, waiting=True)

    def _claim_batch(self, ctx: FlowContext, items: list[Item]) -> None:
        """Claim the ledger keys of ``items``: keys never seen before in one go, the rest (a
        retry, a recovery, another worker's) one by one.  An item gets an outcome when it must
        not be posted now."""
        keys = [str(item.mapped.ledger_key) for item in items]  # type: ignore[union-attr]
        fresh = (
            ledger.claim_many(
                integration_id=self.integration.pk,
                connection_id=self.integration.target_id,
                target=self.flow.ledger_target,
                natural_keys=keys,
                owner=self.owner,
                lease_seconds=self.lease_seconds,
            )
            if len(items) > 1
            else {}
        )
        for item, key in zip(items, keys, strict=True):
            claim = fresh.pop(key, None)  # a key twice in one batch: the second one waits
            if claim is not None:
                item.claim = claim
                continue
            payload = item.mapped
            assert isinstance(payload, Payload)
            item.outcome = self._claim_for(ctx, item, payload)

    def _load_unit(self, ctx: FlowContext, items: list[Item]) -> list[LoadResult | Exception]:
        """One ``load_many`` call (in a load thread): one result or exception per item."""
        batch = []
        for item in items:
            payload = item.mapped
            assert isinstance(payload, Payload)
            entry = item.claim.entry if item.claim else None
            batch.append((payload, posting_of(entry) if entry else None))
        try:
            results = self.flow.load_many(ctx, batch)
            if len(results) != len(batch):
                raise RuntimeError(f"load_many answered {len(results)} of {len(batch)} writes")
        except Exception as exc:  # the whole call failed: the same for every write in it
            results = [exc] * len(batch)
        return results

    def _claim_for(self, ctx: FlowContext, item: Item, payload: Payload) -> Outcome | None:
        """Claim a ledgered write; an outcome when it must not be posted now, else None."""
        claim = item.claim = self._claim(str(payload.ledger_key))
        outcome = self._claimed(ctx, item, payload, claim)
        if outcome is None and item.superseded:  # post afresh, under the next generation
            claim = item.claim = self._claim(str(payload.ledger_key))
            if claim.status is ledger.ClaimStatus.FRESH:
                return None
            outcome = self._claimed(ctx, item, payload, claim)
        return outcome

    def _claimed(
        self, ctx: FlowContext, item: Item, payload: Payload, claim: ledger.Claim
    ) -> Outcome | None:
        entry = claim.entry
        if claim.status is ledger.ClaimStatus.CONFIRMED:
            return Outcome(
                Status.DUPLICATE,
                f"Already posted ({entry.remote_id or 'remote id unknown'}); not posted again.",
                payload=payload,
                target_key=entry.remote_id,
                ledger_entry=entry,
            )
        if claim.status is ledger.ClaimStatus.BUSY:
            return Outcome(
                Status.FAILED,
                "Another worker is posting this record right now; it will be "
                "checked again by the next run or a replay.",
                payload=payload,
                retryable=True,
                ledger_entry=entry,
            )
        if claim.status is not ledger.ClaimStatus.RECOVER:
            return None
        try:
            found = self.flow.find_existing(ctx, payload, posting_of(entry))
        except Superseded as exc:
            if item.superseded:  # twice in one go (another worker in between): later
                return Outcome(
                    Status.FAILED,
                    f"{exc.note} It changed again meanwhile; the next run tries again.",
                    payload=payload,
                    retryable=True,
                    ledger_entry=entry,
                )
            with transaction.atomic():  # refused: the next claim takes a new generation
                ledger.release(entry, refused=True, error=exc.note)
            item.superseded = exc.note
            return None
        except Exception as exc:
            reason = (
                "An earlier attempt may have posted this and the target could not be "
                f"asked ({self._describe(exc)}); not posted again."
            )
            return Outcome(
                Status.FAILED,
                reason,
                payload=payload,
                retryable=True,
                error=exc,
                ledger_op=lambda: ledger.release(entry, refused=False, error=reason),
            )
        if found is None:
            ledger.sending_again(entry)
            return None
        if isinstance(found, Wait):
            return Outcome(
                Status.FAILED,
                found.reason,
                payload=payload,
                retryable=True,
                waiting=True,
                ledger_op=lambda: ledger.release(entry, refused=False, error=found.reason),
            )
        return Outcome(
            Status.SYNCED,
            "Found in the target after an interrupted attempt; not posted again.",
            payload=payload,
            loaded=found,
            ledger_op=lambda: ledger.confirm(entry, remote_id=found.remote_id),
        )

    def _loaded(self, item: Item, payload: Payload, result: LoadResult | Exception) -> Outcome:
        entry = item.claim.entry if item.claim else None
        if isinstance(result, Exception):
            if not isinstance(result, ApiError):
                logger.error("load failed for %s", item.record.source_key, exc_info=result)
            reason = self._describe(result)
            refused = resolution_of(result) is Resolution.REVIEW
            told = plain.failure(
                result,
                system=plain.system_name(self.integration.target.provider_class),
                thing=self.flow.posting_name,
                detail=reason,
                lost_answer=self.flow.after_lost_answer,
            )
            return Outcome(
                Status.FAILED,
                told.reason,
                payload=payload,
                retryable=not refused,
                response=result.summary() if isinstance(result, ApiError) else None,
                error=result,
                detail=told.detail,
                ledger_op=(
                    (lambda: ledger.release(entry, refused=refused, error=reason))
                    if entry is not None
                    else None
                ),
            )
        note = result.note
        if result.flag:
            note = f"{result.flag} {note}".strip()
        if item.superseded:
            note = f"{item.superseded} {note}".strip()
        elif item.claim is not None and item.claim.status is ledger.ClaimStatus.RECOVER:
            note = f"Completed after an interrupted attempt. {note}".strip()
        return Outcome(
            Status.FLAGGED if result.flag else Status.SYNCED,
            note,
            payload=payload,
            loaded=result,
            confirm=(entry, result.remote_id) if entry is not None else None,
        )

    def _claim(self, key: str) -> ledger.Claim:
        deadline = time.monotonic() + self.busy_wait_seconds
        while True:
            claim = ledger.claim(
                integration_id=self.integration.pk,
                connection_id=self.integration.target_id,
                target=self.flow.ledger_target,
                natural_key=key,
                owner=self.owner,
                lease_seconds=self.lease_seconds,
            )
            if claim.status is not ledger.ClaimStatus.BUSY or time.monotonic() >= deadline:
                return claim
            time.sleep(BUSY_POLL_SECONDS)
