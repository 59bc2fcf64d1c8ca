# An audit record can come from a webhook event, and needs a run only when it wrote or failed.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0003_collection_proxy"),
        ("syncs", "0002_webhook_edge"),
    ]

    operations = [
        migrations.AddField(
            model_name="auditrecord",
            name="event",
            field=models.ForeignKey(
                blank=True,
                help_text="The webhook event this record came from (when a webhook delivered it).",
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="records",
                to="syncs.webhookevent",
            ),
        ),
        migrations.AlterField(
            model_name="auditrecord",
            name="run",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="records",
                to="syncs.syncrun",
            ),
        ),
    ]
