# One webhook edge for every system: events keyed by system, processing per (event, integration).

import django.db.models.deletion
from django.db import migrations, models

import connections.models


def forward(apps, schema_editor):
    """Runs were never "queued" or "poll" (scheduled runs poll); forged events were never kept."""
    SyncRun = apps.get_model("syncs", "SyncRun")
    SyncRun.objects.filter(trigger="poll").update(trigger="schedule")
    SyncRun.objects.filter(status="queued").update(status="failed")
    WebhookEvent = apps.get_model("syncs", "WebhookEvent")
    WebhookEvent.objects.filter(signature_valid=False).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("connections", "0002_connection_kind_from_registry"),
        ("syncs", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(forward, migrations.RunPython.noop),
        migrations.RemoveConstraint(
            model_name="webhookevent",
            name="uniq_valid_webhook_event",
        ),
        migrations.RenameField(
            model_name="webhookevent",
            old_name="provider",
            new_name="system",
        ),
        migrations.AlterField(
            model_name="webhookevent",
            name="system",
            field=models.CharField(choices=connections.models.connection_kinds, max_length=20),
        ),
        migrations.RemoveField(
            model_name="webhookevent",
            name="seen_via",
        ),
        migrations.RemoveField(
            model_name="webhookevent",
            name="signature_valid",
        ),
        migrations.AddField(
            model_name="webhookevent",
            name="occurred_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddConstraint(
            model_name="webhookevent",
            constraint=models.UniqueConstraint(
                fields=("system", "connection", "event_id"), name="uniq_webhook_event"
            ),
        ),
        migrations.AlterField(
            model_name="syncrun",
            name="status",
            field=models.CharField(
                choices=[
                    ("running", "Running"),
                    ("succeeded", "Succeeded"),
                    ("partial", "Finished with problems"),
                    ("failed", "Failed"),
                    ("skipped", "Skipped"),
                ],
                default="running",
                max_length=10,
            ),
        ),
        migrations.AlterField(
            model_name="syncrun",
            name="trigger",
            field=models.CharField(
                choices=[
                    ("schedule", "Schedule"),
                    ("manual", "Manual"),
                    ("webhook", "Webhook"),
                    ("replay", "Replay"),
                ],
                max_length=10,
            ),
        ),
        migrations.CreateModel(
            name="WebhookProcessing",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "state",
                    models.CharField(
                        choices=[("pending", "Pending"), ("done", "Done"), ("failed", "Failed")],
                        default="pending",
                        max_length=10,
                    ),
                ),
                ("attempts", models.PositiveIntegerField(default=0)),
                ("error", models.TextField(blank=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "event",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="processings",
                        to="syncs.webhookevent",
                    ),
                ),
                (
                    "integration",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="syncs.integration",
                    ),
                ),
                (
                    "run",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="syncs.syncrun",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("event", "integration"), name="uniq_event_integration"
                    )
                ],
            },
        ),
    ]
