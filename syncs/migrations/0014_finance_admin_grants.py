"""Grants for the finance admin: both groups may run an integration now; reviewers see payment
quotes and the alerts sent."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GRANTS = {
    "Finance reviewer": [
        ("syncs", "run_integration"),
        ("audit", "view_paymentquote"),
        ("syncs", "view_alertsent"),
    ],
    "Integration admin": [
        ("syncs", "run_integration"),
        ("audit", "view_paymentquote"),
        ("syncs", "view_alertsent"),
    ],
}


def grant(apps, schema_editor):
    for app_config in apps.get_app_configs():  # permissions exist only after post_migrate
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, perms in GRANTS.items():
        group = Group.objects.filter(name=name).first()
        if group is None:
            continue
        for app_label, codename in perms:
            perm = Permission.objects.filter(
                content_type__app_label=app_label, codename=codename
            ).first()
            if perm is not None:
                group.permissions.add(perm)


class Migration(migrations.Migration):
    dependencies = [
        ("syncs", "0013_alerts_sent"),
        ("audit", "0008_review_fix_and_detail"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
