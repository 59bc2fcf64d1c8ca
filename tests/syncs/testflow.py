"""A test-only flow and an in-memory target that counts every effect it receives.

The target can be slow (to widen race windows), refuse a record, or apply a post and then lose
the response — the cases the posting ledger exists for.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

from connections.providers.errors import AuthFailed, OutcomeUnknown, Rejected, Transient
from syncs.flows import (
    Flag,
    Flow,
    LoadResult,
    Mappings,
    Payload,
    Posting,
    ReadWindow,
    Skip,
    SourceRecord,
    Summary,
    Unit,
    kinds,
    setting,
)

logger = logging.getLogger(__name__)

SOURCE: list[dict[str, Any]] = []


class FakeTarget:
    """Stands in for an ERP whose add operation is not idempotent."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.posts: dict[str, list[str]] = {}
        self.idempotency_keys: list[str | None] = []
        self.calls = 0
        self.delay = 0.0
        self.refuse: set[str] = set()
        self.lose_response: set[str] = set()
        self.transient: set[str] = set()
        self.auth_fail = False

    def post(self, key: str, data: dict[str, Any], idempotency_key: str | None) -> str:
        with self.lock:
            self.calls += 1
            self.idempotency_keys.append(idempotency_key)
        if self.delay:
            time.sleep(self.delay)
        if self.auth_fail:
            raise AuthFailed("401 from the target")
        if key in self.refuse:
            raise Rejected(f"Invoice {data['invoice']} is closed")
        if key in self.transient:
            raise Transient("503 Service Unavailable after 5 attempts")
        with self.lock:
            remote_id = f"R{sum(len(v) for v in self.posts.values()) + 1}"
            self.posts.setdefault(key, []).append(remote_id)
            lost = key in self.lose_response
            self.lose_response.discard(key)
        if lost:
            raise OutcomeUnknown("read timeout after sending")
        return remote_id

    def find(self, key: str) -> str | None:
        with self.lock:
            ids = self.posts.get(key)
        return ids[0] if ids else None

    def effects(self, key: str) -> int:
        return len(self.posts.get(key, []))


TARGET = FakeTarget()


class LedgerTestFlow(Flow):
    """Payments from SOURCE to TARGET through the posting ledger."""

    key = "test.ledger"
    label = "Test: payments into a fake ERP"
    source_kind = "stripe"
    target_kind = "infor_m3"
    stream = "payments"
    ledger_target = "fake.receipt"
    window = ReadWindow("ts", Unit.ISO, overlap=timedelta(0))
    settings = (setting("rows", "Rows", lambda rows: list(rows)),)
    mapping_kinds = (kinds.GL_ACCOUNT,)

    def extract(self, ctx: Any) -> Iterator[SourceRecord]:
        since = Unit.ISO.parse(ctx.window_start) if ctx.window_start else None
        # Rows in the integration's settings let another process (a real worker) run the flow.
        rows = sorted(self.setting("rows") or SOURCE, key=lambda r: r["ts"])
        rows = [r for r in rows if since is None or Unit.ISO.parse(r["ts"]) >= since]
        ctx.set_total(len(rows))
        for row in rows:
            if row.get("explode"):
                raise ConnectionError("source went away mid-read")
            if row.get("sleep"):  # a long read (for stop and heartbeat tests)
                time.sleep(float(row["sleep"]))
            yield SourceRecord(
                source_key=row["id"], data=row, watermark=row["ts"], seen_via=row.get("via", "")
            )

    def map(self, record: SourceRecord, mappings: Mappings) -> Payload | Flag | Skip:
        data = record.data
        if data.get("status") == "draft":
            return Skip("draft payments are not posted")
        account = mappings.get("gl_account", data["account"])
        if account is None:
            return Flag(
                f"No GL mapping for account {data['account']}",
                fix=("gl_account", str(data["account"])),
            )
        amount = f"{int(data['amount_cents']) / 100:.2f}"  # KeyError/ValueError = bad record
        return Payload(
            data={"invoice": data["invoice"], "amount": amount, "gl": account},
            ledger_key=self.ledger_key(record),
        )

    def ledger_key(self, record: SourceRecord) -> str:
        return str(record.data["id"])

    def summary(self, record: SourceRecord) -> Summary:
        data = record.data
        return Summary(
            Decimal(int(data["amount_cents"])) / 100,
            str(data.get("currency") or "EUR"),
            party=str(data.get("customer") or ""),
            document=str(data.get("invoice") or ""),
        )

    def load(self, ctx: Any, payload: Payload, posting: Posting | None) -> LoadResult:
        key = posting.idempotency_key if posting else None
        remote_id = TARGET.post(str(payload.ledger_key), payload.data, key)
        return LoadResult(remote_id=remote_id, response={"id": remote_id})

    def find_existing(self, ctx: Any, payload: Payload, posting: Posting) -> LoadResult | None:
        remote_id = TARGET.find(str(payload.ledger_key))
        return LoadResult(remote_id=remote_id) if remote_id else None
