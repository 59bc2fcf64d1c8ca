# Integration admins see the record of key rotations (finance reviewers never see connections);
# both groups see the Wise payment quotes.

from django.contrib.auth.management import create_permissions
from django.db import migrations


def grant(apps, schema_editor):
    for app_config in apps.get_app_configs():  # permissions exist only after post_migrate
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group = Group.objects.filter(name="Integration admin").first()
    if group is not None:
        group.permissions.add(
            Permission.objects.get(
                content_type__app_label="connections", codename="view_keyrotation"
            )
        )


class Migration(migrations.Migration):
    dependencies = [
        ("syncs", "0007_run_parts"),
        ("connections", "0003_key_rotation"),
        ("audit", "0007_payment_quotes"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
