"""Fill the summary columns (amount, currency, customer or supplier, document) of the audit rows
written before the runner wrote them, from each row's stored source data through its flow's
``summary`` — so the overview's totals and the queue's amounts cover the past too."""

import logging

from django.db import migrations

logger = logging.getLogger(__name__)

BATCH = 500


def fill(apps, schema_editor):
    from syncs.flows import FLOWS, SourceRecord
    from syncs.run.outcomes import summary_columns

    AuditRecord = apps.get_model("audit", "AuditRecord")
    Integration = apps.get_model("syncs", "Integration")
    flows = {}
    for integration in Integration.objects.all():
        flow = FLOWS.get(integration.flow)
        if flow is not None:
            try:
                flows[integration.pk] = flow()
            except Exception:  # settings no longer valid: its rows keep no summary
                logger.info("No summaries for %s", integration.slug)
    changed = []
    rows = AuditRecord.objects.filter(amount=None, party="", document="").only(
        "pk", "integration_id", "source_key", "source_payload"
    )
    for row in rows.iterator(chunk_size=BATCH):
        flow = flows.get(row.integration_id)
        if flow is None:
            continue
        columns = summary_columns(flow, SourceRecord(row.source_key, row.source_payload or {}))
        if not columns:
            continue
        for name, value in columns.items():
            setattr(row, name, value)
        changed.append(row)
        if len(changed) >= BATCH:
            AuditRecord.objects.bulk_update(
                changed, ["amount", "currency", "party", "party_name", "document"]
            )
            changed = []
    if changed:
        AuditRecord.objects.bulk_update(
            changed, ["amount", "currency", "party", "party_name", "document"]
        )


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0013_record_summary"),
        ("syncs", "0021_split_runs_complete_with_their_last_part"),
    ]

    operations = [migrations.RunPython(fill, migrations.RunPython.noop)]
