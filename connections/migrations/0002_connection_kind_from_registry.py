# The kinds of connection come from the provider registry (a callable: no migration per system).

from django.db import migrations, models

import connections.models


class Migration(migrations.Migration):
    dependencies = [
        ("connections", "0001_initial"),
    ]

    operations = [
        migrations.AlterField(
            model_name="connection",
            name="kind",
            field=models.CharField(choices=connections.models.connection_kinds, max_length=20),
        ),
    ]
