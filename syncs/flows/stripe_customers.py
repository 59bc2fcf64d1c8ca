"""What every ERP → Stripe customer flow shares: a customer is created once (posting ledger +
Stripe idempotency key), found again by its ERP number in metadata after an interrupted create,
and otherwise updated in only the fields that changed."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from connections.providers.stripe import StripeProvider
from syncs.flows.base import FlowContext, LoadResult, Payload, Posting, Skip

logger = logging.getLogger(__name__)

FIELDS = ("name", "email", "phone", "address")


def clean(value: Any) -> Any:
    """A value as Stripe keeps it: empty parts of an address dropped, empty values None."""
    if isinstance(value, dict):
        value = {k: v for k, v in value.items() if v not in (None, "")}
    return value or None


def snapshot(current: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a flow needs of an existing Stripe customer to tell what changed."""
    return {k: current.get(k) for k in ("id", "metadata", *FIELDS)} if current else None


class StripeCustomerWrites:
    """Mixed into a flow whose target is Stripe customers (before ``Flow`` in its bases)."""

    metadata_key: ClassVar[str]  # the metadata key holding the ERP's customer number

    def customer_payload(
        self,
        *,
        wanted: dict[str, Any],
        metadata: dict[str, str],
        current: dict[str, Any] | None,
        ledger_key: str,
        on_create: dict[str, Any] | None = None,
    ) -> Payload | Skip:
        """Create (with ``on_create`` added) when ``current`` is None, else the changes."""
        wanted = {k: clean(v) for k, v in wanted.items()}
        if current is None:
            create = {k: v for k, v in wanted.items() if v is not None}
            return Payload(
                {"create": {**create, **(on_create or {}), "metadata": metadata}},
                ledger_key=ledger_key,
            )
        changes = {k: v or "" for k, v in wanted.items() if clean(current.get(k)) != v}
        if any((current.get("metadata") or {}).get(k) != v for k, v in metadata.items()):
            changes["metadata"] = metadata
        if not changes:
            return Skip("Unchanged in Stripe.")
        return Payload(
            {"id": current["id"], "update": changes}, ledger_key=None, target_key=current["id"]
        )

    def load(
        self, ctx: FlowContext[Any, StripeProvider], payload: Payload, posting: Posting | None
    ) -> LoadResult:
        stripe = ctx.target
        if "create" in payload.data:
            assert posting is not None
            created = stripe.create_customer(
                payload.data["create"], idempotency_key=posting.idempotency_key
            )
            return LoadResult(created["id"], {"id": created["id"]}, "Created in Stripe.")
        updated = stripe.update_customer(payload.data["id"], payload.data["update"])
        return LoadResult(
            updated["id"],
            {"id": updated["id"]},
            "Updated in Stripe: " + ", ".join(sorted(payload.data["update"])) + ".",
        )

    def find_existing(
        self, ctx: FlowContext[Any, StripeProvider], payload: Payload, posting: Posting
    ) -> LoadResult | None:
        number = payload.data["create"]["metadata"][self.metadata_key]
        found = ctx.target.find_customer(key=self.metadata_key, value=number)
        return LoadResult(found["id"], {"id": found["id"]}) if found else None
