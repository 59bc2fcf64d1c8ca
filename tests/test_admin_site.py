"""Every admin page a finance user reaches loads, and every admin action is wired."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib import admin
from django.test import Client

from audit.models import AuditRecord
from syncs.models import Integration, SyncRun
from syncs.runner import Runner
from tests.syncs.testflow import SOURCE

OUR_APPS = ("connections", "syncs", "audit")
SECTIONS = [
    "Connections",
    "Integrations",
    "Field mappings",
    "Sync runs",
    "Audit records",
    "Posting ledger",
    "Webhook events",
    "Review queue",
]


ROW = {"id": "ch_1", "ts": "2026-11-01", "invoice": "I", "amount_cents": 1, "account": "x"}


def test_the_index_shows_every_section(admin_client: Client) -> None:
    page = admin_client.get("/admin/").content.decode()
    for section in SECTIONS:
        assert section in page, section


@pytest.mark.parametrize(
    "model_admin", list(admin.site._registry.values()), ids=lambda m: m.model._meta.label
)
def test_every_changelist_loads(
    admin_client: Client, model_admin: Any, integration: Integration
) -> None:
    SOURCE.append(
        {"id": "ch_1", "ts": "2026-11-01", "invoice": "I", "amount_cents": 1, "account": "x"}
    )
    Runner(integration, trigger="manual").run()
    opts = model_admin.model._meta
    response = admin_client.get(f"/admin/{opts.app_label}/{opts.model_name}/")
    assert response.status_code == 200
    first = model_admin.get_queryset(None).first() if opts.model_name != "user" else None
    if first is not None:
        page = admin_client.get(f"/admin/{opts.app_label}/{opts.model_name}/{first.pk}/change/")
        assert page.status_code == 200


def test_every_declared_action_is_registered_and_callable(rf: Any, admin_user: Any) -> None:
    for model_admin in admin.site._registry.values():
        request = rf.get("/")
        request.user = admin_user
        available = model_admin.get_actions(request)
        for action in model_admin.actions or []:
            name = action if isinstance(action, str) else action.__name__
            assert name in available, f"{model_admin} declares {name} but it is not wired"
            assert callable(available[name][0])


def test_replay_from_the_review_queue_asks_then_replays(
    admin_client: Client,
    integration: Integration,
    django_capture_on_commit_callbacks: Any,
) -> None:
    SOURCE.append(
        {"id": "ch_1", "ts": "2026-11-01", "invoice": "I", "amount_cents": 100, "account": "40"}
    )
    flagged = Runner(integration, trigger="manual").run().records.get()
    url = "/admin/audit/reviewitem/"
    assert "No GL mapping for account 40" in admin_client.get(url).content.decode()
    integration.mappings.create(kind="gl_account", source_value="40", target_value="1930")

    ask = admin_client.post(url, {"action": "replay", "_selected_action": [flagged.pk]})
    assert ask.status_code == 200 and "Yes, replay 1 record(s)" in ask.content.decode()
    assert SyncRun.objects.filter(trigger="replay").count() == 0  # nothing before confirming

    with django_capture_on_commit_callbacks(execute=True):
        done = admin_client.post(
            url, {"action": "replay", "_selected_action": [flagged.pk], "confirmed": "yes"}
        )
    assert done.status_code == 302
    replayed = AuditRecord.objects.get(replay_of=flagged)
    assert replayed.status == AuditRecord.Status.SYNCED
    assert "No GL mapping" not in admin_client.get(url).content.decode()


def test_dismiss_needs_a_reason(admin_client: Client, integration: Integration) -> None:
    SOURCE.append(
        {"id": "ch_1", "ts": "2026-11-01", "invoice": "I", "amount_cents": 100, "account": "40"}
    )
    flagged = Runner(integration, trigger="manual").run().records.get()
    url = "/admin/audit/reviewitem/"
    admin_client.post(
        url, {"action": "dismiss", "_selected_action": [flagged.pk], "confirmed": "yes", "note": ""}
    )
    flagged.refresh_from_db()
    assert flagged.resolved_at is None
    admin_client.post(
        url,
        {
            "action": "dismiss",
            "_selected_action": [flagged.pk],
            "confirmed": "yes",
            "note": "paid by cheque",
        },
    )
    flagged.refresh_from_db()
    assert flagged.resolution == "Dismissed: paid by cheque" and flagged.resolved_by == "admin"


def test_a_view_only_user_sees_no_action_that_changes_anything(
    db: Any, client: Client, integration: Integration
) -> None:
    from django.contrib.auth.models import Permission, User

    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.set(Permission.objects.filter(codename__startswith="view_"))
    client.force_login(viewer)
    SOURCE.append({**ROW, "amount_cents": 100, "account": "40"})
    flagged = Runner(integration, trigger="manual").run().records.get()
    page = client.get("/admin/audit/reviewitem/").content.decode()
    assert flagged.source_key in page and "replay" not in page and "dismiss" not in page
    refused = client.post(
        "/admin/audit/reviewitem/",
        {"action": "replay", "_selected_action": [flagged.pk], "confirmed": "yes"},
    )
    assert refused.status_code in (200, 302)
    assert not AuditRecord.objects.filter(replay_of=flagged).exists()
    assert "run_now" not in client.get("/admin/syncs/integration/").content.decode()
    worker = User.objects.create_user("worker", password="pw", is_staff=True)
    worker.user_permissions.set(
        Permission.objects.filter(codename__in=["view_reviewitem", "change_reviewitem"])
    )
    client.force_login(worker)
    assert "replay" in client.get("/admin/audit/reviewitem/").content.decode()


def test_every_admin_action_declares_its_permission() -> None:
    ours = [m for m in admin.site._registry.values() if m.opts.app_label in OUR_APPS]
    assert ours
    for model_admin in ours:
        for action in model_admin.actions or []:
            func = getattr(model_admin, action) if isinstance(action, str) else action
            assert getattr(func, "allowed_permissions", None), f"{model_admin}.{action}"


def _staff(username: str, *, groups: tuple[str, ...] = (), codenames: Any = None) -> Any:
    from django.contrib.auth.models import Group, Permission, User

    user = User.objects.create_user(username, password="a-long-password-1", is_staff=True)
    user.groups.set(Group.objects.filter(name__in=groups))
    if codenames is not None:
        user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return User.objects.get(pk=user.pk)  # fresh permission cache


def test_a_view_only_user_can_run_no_action_that_acts(db: Any, rf: Any) -> None:
    from django.contrib.auth.models import Permission

    viewer = _staff("viewer")
    viewer.user_permissions.set(Permission.objects.filter(codename__startswith="view_"))
    viewer = type(viewer).objects.get(pk=viewer.pk)
    request = rf.get("/")
    request.user = viewer
    for model_admin in admin.site._registry.values():
        if model_admin.opts.app_label in OUR_APPS:
            allowed = set(model_admin.get_actions(request))
            assert allowed <= {"check_gl_mappings"}, (model_admin, allowed)  # a read-only check


def test_the_finance_reviewer_reviews_maps_and_replays_but_never_sees_connections(
    client: Client, integration: Integration
) -> None:
    client.force_login(_staff("reviewer", groups=("Finance reviewer",)))
    assert client.get("/admin/connections/connection/").status_code == 403
    assert client.get(
        f"/admin/connections/connection/{integration.source_id}/change/"
    ).status_code in (403, 302)
    listing = client.get("/admin/syncs/integration/").content.decode()
    assert "run_now" in listing and "delete_selected" not in listing  # run, never edit
    SOURCE.append({**ROW, "amount_cents": 100, "account": "40"})
    assert Runner(integration, trigger="manual").run().flagged == 1
    added = client.post(
        "/admin/syncs/fieldmapping/add/",
        {
            "integration": integration.pk,
            "kind": "gl_account",
            "source_value": "40",
            "target_value": "1930",
        },
    )
    assert added.status_code == 302
    page = client.get("/admin/audit/reviewitem/").content.decode()
    assert 'value="replay"' in page and 'value="dismiss"' in page
    for secret in integration.source.secret_values():
        assert secret not in page


def test_the_integration_admin_manages_connections_and_runs(
    client: Client, integration: Integration
) -> None:
    client.force_login(_staff("ops", groups=("Integration admin",)))
    assert client.get("/admin/connections/connection/").status_code == 200
    page = client.get("/admin/syncs/integration/").content.decode()
    assert 'value="run_now"' in page
    assert (
        'value="test_connection"' in client.get("/admin/connections/connection/").content.decode()
    )


def test_admin_login_is_throttled(client: Client, db: Any) -> None:
    _staff("ana")
    wrong = {"username": "ana", "password": "guess", "next": "/admin/"}
    answers = [client.post("/admin/login/?next=/admin/", wrong).status_code for _ in range(6)]
    assert answers == [200] * 4 + [429] * 2  # the form again with an error; locked at the 5th
    locked = client.post(
        "/admin/login/?next=/admin/",
        {"username": "ana", "password": "a-long-password-1", "next": "/admin/"},
    )
    assert locked.status_code == 429  # even the right password, for a while
    assert "_auth_user_id" not in client.session
    other = client.post(  # another user from the same address is not locked out
        "/admin/login/?next=/admin/",
        {"username": "bo", "password": "whatever", "next": "/admin/"},
    )
    assert other.status_code == 200
