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


def _every_admin_url(model_admin: Any) -> list[str]:
    opts = model_admin.model._meta
    urls = [f"/admin/{opts.app_label}/{opts.model_name}/"]
    first = model_admin.get_queryset(None).first() if opts.model_name != "user" else None
    if first is not None:
        urls.append(f"/admin/{opts.app_label}/{opts.model_name}/{first.pk}/change/")
    return urls


def _seeded(integration: Integration) -> None:
    """Something on every page: a run, synced and flagged records, a run request."""
    from syncs.services import integration_enqueue_run

    SOURCE.append(dict(ROW))
    SOURCE.append({**ROW, "id": "ch_2", "account": "40"})
    Runner(integration, trigger="manual").run()
    integration_enqueue_run(integration=integration, requested_by="someone")


@pytest.mark.parametrize("who", ["reviewer", "viewer"])
def test_a_reviewer_and_view_only_staff_open_every_page_without_an_error(
    client: Client, integration: Integration, who: str
) -> None:
    from django.contrib.auth.models import Permission

    _seeded(integration)
    if who == "reviewer":
        user = _staff("reviewer", groups=("Finance reviewer",))
    else:
        user = _staff("viewer")
        user.user_permissions.set(Permission.objects.filter(codename__startswith="view_"))
        user = type(user).objects.get(pk=user.pk)
    client.force_login(user)
    opened = 0
    for model_admin in admin.site._registry.values():
        for url in _every_admin_url(model_admin):
            answer = client.get(url)
            assert answer.status_code in (200, 302, 403), (url, answer.status_code)
            opened += answer.status_code == 200
    assert client.get(f"/admin/syncs/integration/{integration.pk}/change/").status_code == 200
    assert opened > 10
    overview = client.get("/admin/").content.decode()
    import re

    for link in sorted(set(re.findall(r'href="(/admin/[^"#?]*)"', overview))):
        if "logout" in link:
            continue
        assert client.get(link).status_code < 500, link


def test_view_only_staff_run_no_action_of_any_admin_third_party_included(db: Any, rf: Any) -> None:
    from django.contrib.auth.models import Permission

    viewer = _staff("viewer2")
    viewer.user_permissions.set(Permission.objects.filter(codename__startswith="view_"))
    viewer = type(viewer).objects.get(pk=viewer.pk)
    request = rf.get("/")
    request.user = viewer
    for model_admin in admin.site._registry.values():
        allowed = set(model_admin.get_actions(request))
        assert allowed <= {"check_gl_mappings"}, (model_admin, allowed)


def test_the_finance_reviewer_cannot_resubmit_tasks_but_the_integration_admin_can(
    client: Client, integration: Integration
) -> None:
    from django_q.models import Success
    from django_q.tasks import async_task

    async_task("math.floor", 1.5, sync=True)
    task = Success.objects.first()
    assert task is not None
    form = {"action": "resubmit", "_selected_action": [task.pk]}
    client.force_login(_staff("rev", groups=("Finance reviewer",)))
    assert client.post("/admin/django_q/success/", form).status_code == 403  # not even listed
    client.force_login(_staff("ops2", groups=("Integration admin",)))
    listing = client.get("/admin/django_q/success/").content.decode()
    assert 'value="resubmit"' in listing
    done = client.post("/admin/django_q/success/", form, follow=True)
    assert done.status_code == 200
    assert "Queued 1 task(s) again." in done.content.decode()


def test_clean_up_expired_login_attempts_works_and_needs_delete(
    client: Client, db: Any, admin_user: Any
) -> None:
    from datetime import timedelta

    from axes.models import AccessAttempt
    from django.utils import timezone

    old = AccessAttempt.objects.create(
        username="x", ip_address="10.0.0.1", user_agent="ua", failures_since_start=3
    )
    AccessAttempt.objects.filter(pk=old.pk).update(attempt_time=timezone.now() - timedelta(days=2))
    client.force_login(_staff("rev2", groups=("Finance reviewer",)))
    assert (
        "cleanup_expired_attempts" not in client.get("/admin/axes/accessattempt/").content.decode()
    )
    client.force_login(admin_user)
    done = client.post(
        "/admin/axes/accessattempt/",
        {"action": "cleanup_expired_attempts", "_selected_action": [old.pk]},
        follow=True,
    )
    assert done.status_code == 200
    assert not AccessAttempt.objects.filter(pk=old.pk).exists()


@pytest.mark.parametrize("selected", ["abc", "1.5", str(10**30), "-"])
def test_a_list_action_with_a_selection_that_does_not_parse_is_refused_plainly(
    admin_client: Client, integration: Integration, selected: str
) -> None:
    for model_admin in admin.site._registry.values():
        opts = model_admin.model._meta
        request_actions = list(model_admin.actions or []) or ["delete_selected"]
        action = request_actions[0] if isinstance(request_actions[0], str) else "delete_selected"
        url = f"/admin/{opts.app_label}/{opts.model_name}/"
        answer = admin_client.post(url, {"action": action, "_selected_action": [selected]})
        assert answer.status_code < 500, (url, answer.status_code)


def test_password_spraying_from_one_address_is_locked_across_usernames(
    client: Client, db: Any
) -> None:
    from django.conf import settings

    _staff("real-user")
    limit = settings.LOGIN_ADDRESS_FAILURE_LIMIT
    answers = []
    for n in range(limit + 3):  # one or two guesses each on many usernames
        answers.append(
            client.post(
                "/admin/login/?next=/admin/",
                {"username": f"user{n // 2}", "password": "Summer2026!", "next": "/admin/"},
            ).status_code
        )
    assert answers[: limit - 1] == [200] * (limit - 1)  # each username is under its own limit
    assert 429 in answers[limit - 1 :]
    locked = client.post(
        "/admin/login/?next=/admin/",
        {"username": "real-user", "password": "a-long-password-1", "next": "/admin/"},
    )
    assert locked.status_code == 429  # the whole address, even with the right password
    other = Client(REMOTE_ADDR="10.9.9.9")
    assert (
        other.post(
            "/admin/login/?next=/admin/",
            {"username": "real-user", "password": "a-long-password-1", "next": "/admin/"},
        ).status_code
        == 302
    )
