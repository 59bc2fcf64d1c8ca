# The two groups finance teams are given, with exactly the permissions their work needs.

from django.contrib.auth.management import create_permissions
from django.db import migrations

VIEW = "view_{}"
REVIEWER = {
    # Review, map, replay and dismiss; never connections or secrets.
    "syncs": [
        "view_integration",
        "view_syncrun",
        "view_webhookevent",
        "view_webhookprocessing",
        "view_cursor",
        "view_fieldmapping",
        "add_fieldmapping",
        "change_fieldmapping",
        "delete_fieldmapping",
    ],
    "audit": [
        "view_auditrecord",
        "change_auditrecord",
        "view_reviewitem",
        "change_reviewitem",
        "view_collection",
        "view_postingledger",
    ],
}
ADMIN = {
    # Everything the reviewer does, plus connections, integrations, schedules and unlocking
    # locked-out logins.
    "connections": [
        "view_connection",
        "add_connection",
        "change_connection",
        "delete_connection",
        "view_oauthtoken",
    ],
    "syncs": [
        *REVIEWER["syncs"],
        "add_integration",
        "change_integration",
        "delete_integration",
        "change_webhookevent",
        "change_cursor",
    ],
    "audit": REVIEWER["audit"],
    "django_q": ["view_schedule", "view_success", "view_failure", "view_ormq"],
    "axes": ["view_accessattempt", "delete_accessattempt", "view_accessfailurelog"],
}
GROUPS = {"Finance reviewer": REVIEWER, "Integration admin": ADMIN}


def create_groups(apps, schema_editor):
    for app_config in apps.get_app_configs():  # permissions exist only after post_migrate
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, grants in GROUPS.items():
        group, _ = Group.objects.get_or_create(name=name)
        wanted = [
            Permission.objects.get(content_type__app_label=app, codename=codename)
            for app, codenames in grants.items()
            for codename in codenames
        ]
        group.permissions.set(wanted)


class Migration(migrations.Migration):
    dependencies = [
        ("syncs", "0003_reaper_and_one_live_run"),
        ("audit", "0005_ledger_per_target_connection"),
        ("connections", "0002_connection_kind_from_registry"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("django_q", "0018_task_success_index"),
        ("axes", "0009_add_session_hash"),
    ]

    operations = [migrations.RunPython(create_groups, migrations.RunPython.noop)]
