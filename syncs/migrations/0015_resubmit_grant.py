"""Integration admins may resubmit django-q2 tasks (the change permission of its task lists);
Finance reviewers and view-only staff may not."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GRANTS = [("django_q", "change_success"), ("django_q", "change_failure")]


def grant(apps, schema_editor):
    for app_config in apps.get_app_configs():  # permissions exist only after post_migrate
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group = Group.objects.filter(name="Integration admin").first()
    if group is None:
        return
    for app_label, codename in GRANTS:
        perm = Permission.objects.filter(
            content_type__app_label=app_label, codename=codename
        ).first()
        if perm is not None:
            group.permissions.add(perm)


class Migration(migrations.Migration):
    dependencies = [("syncs", "0014_finance_admin_grants")]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
