"""The posting-ledger protocol (called only by the runner).

``claim`` decides, under a row lock, what a worker may do with one natural key:
``FRESH`` post it; ``RECOVER`` ask the target first (an earlier attempt's outcome is unknown);
``CONFIRMED`` skip, it is posted; ``BUSY`` another worker holds the lease right now.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.db.models import Case, F, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from audit.models import PostingLedger

logger = logging.getLogger(__name__)


class ClaimStatus(enum.Enum):
    FRESH = "fresh"
    RECOVER = "recover"
    CONFIRMED = "confirmed"
    BUSY = "busy"


@dataclass(frozen=True)
class Claim:
    status: ClaimStatus
    entry: PostingLedger


def claim(
    *,
    integration_id: int,
    connection_id: int,
    target: str,
    natural_key: str,
    owner: str,
    lease_seconds: float,
) -> Claim:
    """Claim ``natural_key`` for posting (committed at once, before any remote call)."""
    now = timezone.now()
    lease_until = now + timedelta(seconds=lease_seconds)
    with transaction.atomic():
        entry, created = PostingLedger.objects.select_for_update().get_or_create(
            connection_id=connection_id,
            target=target,
            natural_key=natural_key,
            defaults={
                "integration_id": integration_id,
                "lease_owner": owner,
                "lease_expires_at": lease_until,
                "attempted_at": now,
            },
        )
        if created:
            return Claim(ClaimStatus.FRESH, entry)
        if entry.state == PostingLedger.State.CONFIRMED:
            return Claim(ClaimStatus.CONFIRMED, entry)
        if (
            entry.state == PostingLedger.State.PENDING
            and entry.lease_expires_at is not None
            and entry.lease_expires_at > now
            and entry.lease_owner != owner
        ):
            return Claim(ClaimStatus.BUSY, entry)
        status = (
            ClaimStatus.RECOVER if entry.state == PostingLedger.State.PENDING else ClaimStatus.FRESH
        )
        if entry.state == PostingLedger.State.FAILED:
            entry.generation += 1  # the target refused the last one: a new idempotency key
            entry.attempted_at = now  # …and it is sent (a recovery sends only if not found)
        entry.state = PostingLedger.State.PENDING
        entry.attempts += 1
        entry.lease_owner = owner
        entry.lease_expires_at = lease_until
        entry.save()
        return Claim(status, entry)


def claim_many(
    *,
    integration_id: int,
    connection_id: int,
    target: str,
    natural_keys: list[str],
    owner: str,
    lease_seconds: float,
) -> dict[str, Claim]:
    """Claim keys never posted before in one transaction (the usual case for a chunk of new
    records): one insert for all of them.  Keys that exist already — or that another worker
    inserted meanwhile — are left out of the answer: claim those one by one with ``claim``."""
    now = timezone.now()
    lease_until = now + timedelta(seconds=lease_seconds)
    scope = PostingLedger.objects.filter(connection_id=connection_id, target=target)
    with transaction.atomic():
        existing = set(
            scope.filter(natural_key__in=natural_keys).values_list("natural_key", flat=True)
        )
        fresh = [k for k in dict.fromkeys(natural_keys) if k not in existing]
        if not fresh:
            return {}
        PostingLedger.objects.bulk_create(
            [
                PostingLedger(
                    integration_id=integration_id,
                    connection_id=connection_id,
                    target=target,
                    natural_key=key,
                    lease_owner=owner,
                    lease_expires_at=lease_until,
                    attempted_at=now,
                )
                for key in fresh
            ],
            ignore_conflicts=True,
        )
        ours = scope.filter(
            natural_key__in=fresh, lease_owner=owner, attempts=1, state=PostingLedger.State.PENDING
        ).filter(created_at__gte=now)
        return {entry.natural_key: Claim(ClaimStatus.FRESH, entry) for entry in ours}


def confirm(entry: PostingLedger, *, remote_id: str) -> PostingLedger:
    """Mark posted; call inside the transaction that writes the AuditRecord."""
    now = timezone.now()
    confirmed = PostingLedger.State.CONFIRMED
    if (
        PostingLedger.objects.filter(pk=entry.pk)
        .exclude(state=confirmed)
        .update(
            state=confirmed,
            remote_id=remote_id or F("remote_id"),
            confirmed_at=Coalesce(F("confirmed_at"), now),
            lease_owner="",
            lease_expires_at=None,
            last_error="",
            updated_at=now,
        )
    ):  # one statement in the usual case; the row is read back only if it was confirmed already
        entry.state, entry.remote_id = confirmed, remote_id or entry.remote_id
        entry.lease_owner, entry.lease_expires_at, entry.last_error = "", None, ""
        return entry
    locked = PostingLedger.objects.select_for_update().get(pk=entry.pk)
    if locked.state == PostingLedger.State.CONFIRMED and locked.remote_id != remote_id:
        logger.error(
            "Ledger %s %s confirmed twice with different remote ids (%s, %s)",
            locked.target,
            locked.natural_key,
            locked.remote_id,
            remote_id,
        )
    locked.state = PostingLedger.State.CONFIRMED
    locked.remote_id = remote_id or locked.remote_id
    locked.confirmed_at = locked.confirmed_at or timezone.now()
    locked.lease_owner, locked.lease_expires_at, locked.last_error = "", None, ""
    locked.save()
    return locked


def confirm_many(pairs: list[tuple[PostingLedger, str]]) -> dict[int, PostingLedger]:
    """``confirm`` for many entries (inside the transaction that writes their audit records):
    one statement for those still pending; any confirmed meanwhile go through ``confirm``."""
    if not pairs:
        return {}
    if len(pairs) == 1:
        entry, remote_id = pairs[0]
        return {entry.pk: confirm(entry, remote_id=remote_id)}
    by_pk = {entry.pk: (entry, remote_id) for entry, remote_id in pairs}
    done = set(
        PostingLedger.objects.filter(
            pk__in=list(by_pk), state=PostingLedger.State.CONFIRMED
        ).values_list("pk", flat=True)
    )
    result = {pk: confirm(by_pk[pk][0], remote_id=by_pk[pk][1]) for pk in done}
    pending = [pk for pk in by_pk if pk not in done]
    if pending:
        now = timezone.now()
        PostingLedger.objects.filter(pk__in=pending).exclude(
            state=PostingLedger.State.CONFIRMED
        ).update(
            state=PostingLedger.State.CONFIRMED,
            remote_id=Case(
                *(When(pk=pk, then=Value(by_pk[pk][1])) for pk in pending if by_pk[pk][1]),
                default=F("remote_id"),
            ),
            confirmed_at=Coalesce(F("confirmed_at"), now),
            lease_owner="",
            lease_expires_at=None,
            last_error="",
            updated_at=now,
        )
        for pk in pending:
            entry, remote_id = by_pk[pk]
            entry.state = PostingLedger.State.CONFIRMED
            entry.remote_id = remote_id or entry.remote_id
            entry.lease_owner, entry.lease_expires_at, entry.last_error = "", None, ""
            result[pk] = entry
    return result


def sending_again(entry: PostingLedger) -> None:
    """A recovered claim whose earlier attempt the target does not hold is sent again now."""
    now = timezone.now()
    PostingLedger.objects.filter(pk=entry.pk).update(attempted_at=now)
    entry.attempted_at = now


def release(entry: PostingLedger, *, refused: bool, error: str) -> PostingLedger:
    """End a claim without confirming it.

    ``refused``: the target said no and nothing was applied (state ``failed``); otherwise the
    outcome is unknown and the entry stays ``pending`` with its lease released, so the next
    attempt asks the target before posting.
    """
    locked = PostingLedger.objects.select_for_update().get(pk=entry.pk)
    if locked.state == PostingLedger.State.CONFIRMED:
        return locked
    locked.state = PostingLedger.State.FAILED if refused else PostingLedger.State.PENDING
    locked.lease_owner, locked.lease_expires_at = "", None
    locked.last_error = error[:2000]
    locked.save()
    return locked
