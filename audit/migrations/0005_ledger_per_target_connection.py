# The posting ledger is unique per target connection (the system account posted to), not per
# integration: two integrations feeding one account can no longer post the same thing twice.

import django.db.models.deletion
from django.db import migrations, models


def target_connections(apps, schema_editor):
    """Each entry's connection is its integration's target; entries two integrations made for
    the same thing (the bug this fixes) keep their history under a marked key."""
    PostingLedger = apps.get_model("audit", "PostingLedger")
    seen = set()
    for entry in PostingLedger.objects.select_related("integration").order_by(
        "-state",
        "created_at",
        "pk",  # confirmed before pending/failed, oldest first
    ):
        entry.connection_id = entry.integration.target_id
        key = (entry.connection_id, entry.target, entry.natural_key)
        if key in seen:
            entry.natural_key = f"{entry.natural_key}#duplicate-{entry.pk}"[:255]
        seen.add(key)
        entry.save(update_fields=["connection", "natural_key"])


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0004_auditrecord_event"),
        ("connections", "0002_connection_kind_from_registry"),
        ("syncs", "0002_webhook_edge"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="postingledger",
            name="uniq_ledger_natural_key",
        ),
        migrations.AddField(
            model_name="postingledger",
            name="connection",
            field=models.ForeignKey(
                null=True,
                help_text="The target connection (the system account posted to).",
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="connections.connection",
            ),
        ),
        migrations.RunPython(target_connections, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="postingledger",
            name="connection",
            field=models.ForeignKey(
                help_text="The target connection (the system account posted to).",
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="connections.connection",
            ),
        ),
        migrations.AlterField(
            model_name="postingledger",
            name="integration",
            field=models.ForeignKey(
                help_text="The integration that first claimed this posting.",
                on_delete=django.db.models.deletion.PROTECT,
                related_name="ledger_entries",
                to="syncs.integration",
            ),
        ),
        migrations.AddConstraint(
            model_name="postingledger",
            constraint=models.UniqueConstraint(
                fields=("connection", "target", "natural_key"), name="uniq_ledger_posting"
            ),
        ),
    ]
