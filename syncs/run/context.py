"""What a flow works in during a run (``FlowContext``): its connections' clients, the ledger
view, what webhook deliveries and earlier runs already processed, the integration's mappings;
and, after the run, the source files it read to the end recorded as processed."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from connections.providers.base import Provider
from connections.providers.registry import client_for
from syncs.flows import Flow, FlowContext, Mappings
from syncs.models import FieldMapping, Integration, ProcessedFile, WebhookProcessing
from syncs.run.ledger import RunLedger

logger = logging.getLogger(__name__)


def run_context(
    integration: Integration, flow: Flow, *, set_total: Callable[[int], None], width: int
) -> FlowContext:
    """A fresh context for one run of ``flow`` for ``integration``."""

    def make_client(side: str) -> Provider:
        return client_for(getattr(integration, side))

    def files_processed(files: Sequence[tuple[str, int, str]]) -> set[tuple[str, int, str]]:
        if not files:
            return set()
        rows = ProcessedFile.objects.filter(
            integration=integration, name__in=[name for name, _, _ in files]
        ).values_list("name", "size", "sha256")
        return {(n, int(z), h) for n, z, h in rows} & set(files)

    def processed_events(event_ids: Sequence[str]) -> set[str]:
        if not event_ids:
            return set()
        return set(
            WebhookProcessing.objects.filter(
                integration=integration,
                state=WebhookProcessing.State.DONE,
                event__connection_id=integration.source_id,
                event__event_id__in=list(event_ids),
            ).values_list("event__event_id", flat=True)
        )

    return FlowContext(
        integration=integration,
        window_start=None,
        make_client=make_client,
        set_total=set_total,
        processed_events=processed_events,
        ledger=RunLedger(integration.source_id, integration.target_id, flow.ledger_target),
        processed_files=files_processed,
        width=width,
    )


def run_mappings(integration: Integration, flow: Flow) -> Mappings:
    """The integration's mappings (shared ones first, its own laid over them), readable only
    under the kinds its flow declares."""
    rows = sorted(
        FieldMapping.for_integration(integration), key=lambda m: m.integration_id is not None
    )
    return Mappings(
        {(m.kind, m.source_value.strip()): m.target_value for m in rows},
        declared=[kind.name for kind in flow.mapping_kinds],
    )


def files_done(integration: Integration, ctx: FlowContext) -> None:
    """The source files read to the end, with nothing to read again: recorded, so they are never
    processed twice (name, size, checksum), and handed to ``acknowledge``."""
    if not ctx.files:
        return
    ProcessedFile.objects.bulk_create(
        [
            ProcessedFile(
                integration=integration,
                kind=f["kind"][:40],
                name=f["name"][:255],
                size=int(f["size"]),
                sha256=f["sha256"],
                rows=int(f.get("rows", 0)),
            )
            for f in ctx.files
        ],
        ignore_conflicts=True,
    )
    ctx.done_files = list(ctx.files)
