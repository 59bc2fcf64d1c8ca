"""The finance admin without a browser: the overview, the review queue as one item per record,
the item page's replay and dismiss, the fix that saves a mapping and replays, quiet lists,
CSV in and out, and alerts."""

from __future__ import annotations

import importlib
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.core import mail
from django.test import Client
from django.utils import timezone

from audit.models import AuditRecord
from syncs.alerts import alerts_send
from syncs.models import AlertSent, FieldMapping, Integration, SyncRun
from syncs.runner import Runner
from tests.syncs.testflow import SOURCE, TARGET

S = AuditRecord.Status
ROW = {"ts": "2026-11-01", "invoice": "INV1", "amount_cents": 12345, "account": "40"}


def _reviewer(email: str = "") -> User:
    groups = importlib.import_module("syncs.migrations.0004_permission_groups")
    grants = importlib.import_module("syncs.migrations.0014_finance_admin_grants")
    group, _ = Group.objects.get_or_create(name="Finance reviewer")
    wanted = [(app, code) for app, codes in groups.REVIEWER.items() for code in codes]
    for app, code in [*wanted, *grants.GRANTS["Finance reviewer"]]:
        group.permissions.add(Permission.objects.get(content_type__app_label=app, codename=code))
    user = User.objects.create_user("rita", password="pw", is_staff=True, email=email)
    user.groups.add(group)
    return User.objects.get(pk=user.pk)


def _run(integration: Integration, trigger: str = "schedule") -> SyncRun:
    return Runner(Integration.objects.get(pk=integration.pk), trigger=trigger).run()


@pytest.fixture(autouse=True)
def mapped(integration: Integration) -> None:
    """Account 40 is mapped; the tests flag other accounts."""
    FieldMapping.objects.create(
        integration=integration, kind="gl_account", source_value="40", target_value="1930"
    )


@pytest.fixture
def reviewer_client(db: Any) -> Client:
    client = Client()
    client.force_login(_reviewer())
    return client


def test_a_failure_seen_by_three_runs_is_one_queue_item_seen_three_times(
    integration: Integration, reviewer_client: Client
) -> None:
    SOURCE.append({**ROW, "id": "ch_1", "account": "40"})
    TARGET.transient.add("ch_1")
    for _ in range(3):
        _run(integration)
    (failed,) = AuditRecord.objects.filter(source_key="ch_1", status=S.FAILED)
    assert failed.times_seen == 3 and failed.retryable  # one row that counts, as flags do
    page = reviewer_client.get("/admin/audit/reviewitem/").content.decode()
    listed = page.split('id="result_list"', 1)[1]
    assert listed.count('payments <span class="mlc-id">ch_1</span></a>') == 1  # one, not three
    assert "3\u00d7" in page
    latest = AuditRecord.objects.filter(source_key="ch_1").latest("pk")
    # Dismissing the item takes every open row of the record with it.
    response = reviewer_client.post(
        f"/admin/audit/reviewitem/{latest.pk}/dismiss/", {"note": "paid by cheque"}
    )
    assert response.status_code == 302
    assert not AuditRecord.objects.filter(source_key="ch_1", resolved_at=None).exists()
    assert "ch_1" not in reviewer_client.get("/admin/audit/reviewitem/").content.decode()


def test_a_plain_reason_is_stored_with_the_technical_detail_apart(
    integration: Integration,
) -> None:
    SOURCE.append({**ROW, "id": "ch_2"})
    TARGET.refuse.add("ch_2")
    record = _run(integration).records.get(source_key="ch_2")
    assert record.reason == "CloudSuite refused the record: Invoice INV1 is closed."
    assert record.detail == "Invoice INV1 is closed" and not record.retryable


def test_the_fix_link_saves_the_mapping_and_replays_the_item_in_one_step(
    integration: Integration, reviewer_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    SOURCE.append({**ROW, "id": "ch_3", "account": "77"})
    flagged = _run(integration).records.get(source_key="ch_3")
    assert (flagged.status, flagged.fix_kind, flagged.fix_value) == (S.FLAGGED, "gl_account", "77")
    queue = reviewer_client.get("/admin/audit/reviewitem/").content.decode()
    assert "Add the GL account mapping for 77" in queue
    form_url = (
        f"/admin/syncs/fieldmapping/add/?integration={integration.pk}&kind=gl_account"
        f"&source_value=77&replay={flagged.pk}"
    )
    form = reviewer_client.get(form_url).content.decode()
    assert 'value="77"' in form  # prefilled
    with django_capture_on_commit_callbacks(execute=True):
        saved = reviewer_client.post(
            form_url,
            {
                "integration": integration.pk,
                "kind": "gl_account",
                "source_value": "77",
                "target_value": "1930",
                "note": "",
                "_save": "Save",
            },
        )
    assert saved.status_code == 302 and saved["Location"].endswith(
        f"/admin/audit/reviewitem/{flagged.pk}/change/"
    )
    flagged.refresh_from_db()
    assert flagged.resolved_at is not None and TARGET.effects("ch_3") == 1
    state = reviewer_client.get(f"/admin/audit/reviewitem/{flagged.pk}/state/").json()
    assert state["state"] == "done" and "synced" in state["label"]
    page = reviewer_client.get(f"/admin/audit/reviewitem/{flagged.pk}/change/").content.decode()
    assert "Replayed and synced" in page and "see the replay" in page


def test_replay_from_the_item_page_asks_first_and_shows_what_it_will_use(
    integration: Integration, reviewer_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    SOURCE.append({**ROW, "id": "ch_4", "account": "88"})
    flagged = _run(integration).records.get(source_key="ch_4")
    page = reviewer_client.get(f"/admin/audit/reviewitem/{flagged.pk}/change/").content.decode()
    assert 'id="mlc-replay"' in page and 'id="mlc-dismiss"' in page
    assert "123.45" not in page or "Amount cents" in page  # labelled fields, not raw JSON first
    ask = reviewer_client.get(f"/admin/audit/reviewitem/{flagged.pk}/replay/").content.decode()
    assert "Yes, replay it" in ask and "No GL mapping for account 88" in ask
    assert TARGET.calls == 0  # asking sends nothing
    FieldMapping.objects.create(
        integration=integration, kind="gl_account", source_value="88", target_value="1930"
    )
    with django_capture_on_commit_callbacks(execute=True):
        done = reviewer_client.post(
            f"/admin/audit/reviewitem/{flagged.pk}/replay/", {"confirmed": "yes"}
        )
    assert done.status_code == 302 and TARGET.effects("ch_4") == 1


def test_a_view_only_user_gets_no_buttons_and_403_on_replay(
    integration: Integration, db: Any
) -> None:
    viewer = User.objects.create_user("vic", password="pw", is_staff=True)
    viewer.user_permissions.set(Permission.objects.filter(codename__startswith="view_"))
    client = Client()
    client.force_login(viewer)
    SOURCE.append({**ROW, "id": "ch_5", "account": "99"})
    flagged = _run(integration).records.get(source_key="ch_5")
    page = client.get(f"/admin/audit/reviewitem/{flagged.pk}/change/").content.decode()
    assert 'id="mlc-replay"' not in page and 'id="mlc-fix"' not in page
    assert (
        client.post(
            f"/admin/audit/reviewitem/{flagged.pk}/replay/", {"confirmed": "yes"}
        ).status_code
        == 403
    )
    assert TARGET.calls == 0


def test_the_overview_counts_what_waits_and_runs_now(
    integration: Integration, reviewer_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    SOURCE.extend([{**ROW, "id": "ch_6"}, {**ROW, "id": "ch_7", "account": "x"}])
    _run(integration)
    page = reviewer_client.get("/admin/").content.decode()
    assert "Needs attention" in page and "Test payments" in page
    assert 'id="mlc-waiting"' in page and ">1</span>" in page
    with django_capture_on_commit_callbacks(execute=True):
        ran = reviewer_client.post(f"/admin/syncs/integration/{integration.pk}/run/")
    assert ran.status_code == 302
    assert SyncRun.objects.filter(integration=integration, trigger="manual").exists()


def test_runs_that_found_nothing_are_not_listed_by_default_and_webhook_runs_that_posted_are(
    integration: Integration, admin_client: Client
) -> None:
    SOURCE.append({**ROW, "id": "ch_8"})
    busy = _run(integration)
    empty = _run(integration)
    SOURCE.append({**ROW, "id": "ch_10", "ts": "2026-11-09"})
    delivered = _run(integration, trigger="webhook")  # a webhook delivery that posted
    assert empty.synced == 0 and busy.synced == 1 and delivered.synced == 1
    listing = admin_client.get("/admin/syncs/syncrun/").content.decode()
    assert f"#{busy.pk}<" in listing and f"#{empty.pk}<" not in listing
    assert f"#{delivered.pk}<" in listing
    note = listing.split('id="mlc-empty-runs"', 1)[1].split("</p>", 1)[0]
    assert "1 run of the last 24 h that found nothing new" in note
    title = listing.split("<title>", 1)[1].split("</title>", 1)[0]
    assert "found nothing" not in title and "webhook" not in title  # a filter is no heading
    everything = admin_client.get("/admin/syncs/syncrun/?show=all").content.decode()
    assert f"#{empty.pk}<" in everything


def test_re_reads_are_counted_on_the_run_not_listed_in_the_audit_trail(
    integration: Integration, admin_client: Client
) -> None:
    SOURCE.append({**ROW, "id": "ch_9", "ts": "2026-11-02"})
    _run(integration)
    integration.cursors.all().delete()  # read it all again: a duplicate
    again = _run(integration)
    assert again.duplicate == 1
    default = admin_client.get("/admin/audit/auditrecord/").content.decode()
    assert default.count("Duplicate (already posted)</span>") == 0
    everything = admin_client.get("/admin/audit/auditrecord/?show=all").content.decode()
    assert "Duplicate (already posted)</span>" in everything


def test_audit_records_export_to_csv_for_a_reviewer(
    integration: Integration, reviewer_client: Client
) -> None:
    SOURCE.append({**ROW, "id": "ch_10", "account": "x"})
    _run(integration)
    page = reviewer_client.get("/admin/audit/auditrecord/export/")
    assert page.status_code == 200
    exported = reviewer_client.post(
        "/admin/audit/auditrecord/export/",
        {"format": "0", **{f"auditrecordresource_{f}": "on" for f in ("id", "status", "reason")}},
    )
    assert exported.status_code == 200 and "text/csv" in exported["Content-Type"]
    text = exported.content.decode()
    assert "Flagged for review" in text and "No GL mapping for account x" in text


def test_mappings_import_from_csv_after_a_preview(
    integration: Integration, reviewer_client: Client
) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    csv = (
        "integration,kind,source_value,target_value,note\n"
        f"{integration.slug},gl_account,6000,6110,Office\n"
        f"{integration.slug},not_a_kind,6500,6540,Bad row\n"
    )
    preview = reviewer_client.post(
        "/admin/syncs/fieldmapping/import/",
        {
            "format": "0",
            "resource": "0",
            "import_file": SimpleUploadedFile("m.csv", csv.encode(), "text/csv"),
        },
    )
    assert preview.status_code == 200
    body = preview.content.decode()
    assert "“not_a_kind” is not a kind of mapping" in body
    assert not FieldMapping.objects.filter(source_value="6000").exists()  # nothing saved yet
    good = csv.splitlines(keepends=True)[:2]
    good = "".join(good)
    preview = reviewer_client.post(
        "/admin/syncs/fieldmapping/import/",
        {
            "format": "0",
            "resource": "0",
            "import_file": SimpleUploadedFile("m.csv", good.encode(), "text/csv"),
        },
    )
    confirm = preview.context["confirm_form"]
    done = reviewer_client.post("/admin/syncs/fieldmapping/process_import/", dict(confirm.initial))
    assert done.status_code == 302
    assert FieldMapping.objects.get(source_value="6000").target_value == "6110"


def test_alerts_tell_the_reviewers_once_of_a_failed_run_and_of_long_waits(
    integration: Integration, settings: Any
) -> None:
    _reviewer(email="rita@example.com")
    settings.MLC = {**settings.MLC, "ALERT_WAITING_HOURS": 1}
    SOURCE.append({**ROW, "id": "ch_11", "account": "zz"})
    _run(integration)
    failed = SyncRun.objects.create(
        integration=integration,
        trigger="schedule",
        status=SyncRun.Status.FAILED,
        finished_at=timezone.now(),
        error_summary="CloudSuite refused ml-connector's sign-in.",
    )
    AuditRecord.objects.filter(source_key="ch_11").update(
        created_at=timezone.now() - timedelta(hours=2)
    )
    sent = alerts_send()
    assert sent == {"runs": 1, "waiting": 1, "recipients": 1}
    subjects = [m.subject for m in mail.outbox]
    assert any("failed" in s for s in subjects) and any("waiting" in s for s in subjects)
    body = "\n".join(m.body for m in mail.outbox)
    assert f"syncs/syncrun/{failed.pk}/change/" in body and "sign-in" in body
    assert mail.outbox[0].to == ["rita@example.com"]
    assert alerts_send() == {"runs": 0, "waiting": 0, "recipients": 1}  # told once
    assert AlertSent.objects.count() == 2


def test_no_alert_is_lost_when_there_is_no_one_to_tell(integration: Integration) -> None:
    SyncRun.objects.create(
        integration=integration, trigger="schedule", status="failed", finished_at=timezone.now()
    )
    assert alerts_send()["recipients"] == 0 and not mail.outbox
    _reviewer(email="rita@example.com")
    assert alerts_send()["runs"] == 1  # still due once someone can be told


def test_a_replay_that_fails_again_keeps_the_item_s_age_and_count_and_the_page_follows(
    integration: Integration, reviewer_client: Client
) -> None:
    from syncs.services import record_state, records_replay

    SOURCE.append({**ROW, "id": "ch_77", "account": "zz"})
    _run(integration)
    _run(integration)  # seen twice
    first = AuditRecord.objects.get(source_key="ch_77", status=S.FLAGGED, resolved_at=None)
    eleven = timezone.now() - timedelta(minutes=11)
    AuditRecord.objects.filter(pk=first.pk).update(created_at=eleven)
    records_replay(record_ids=[first.pk], requested_by="rita")
    live = AuditRecord.objects.get(source_key="ch_77", resolved_at=None)
    assert live.pk != first.pk and live.replay_of_id == first.pk
    assert live.times_seen == 3 and live.first_seen_at == eleven
    queue = reviewer_client.get("/admin/audit/reviewitem/").content.decode()
    assert "11 min" in queue and "3\u00d7" in queue
    moved = reviewer_client.get(f"/admin/audit/reviewitem/{first.pk}/change/")
    assert moved.status_code == 302
    assert moved["Location"].endswith(f"/admin/audit/reviewitem/{live.pk}/change/")
    assert record_state(record=first)["live_id"] == live.pk
    page = reviewer_client.get(moved["Location"]).content.decode()
    assert "was replayed and needs attention again" in page and 'id="mlc-replay"' in page
    history = reviewer_client.get(f"/admin/audit/auditrecord/{first.pk}/change/")
    assert history.status_code == 200  # the audit trail still shows the old row as it was


def test_oldest_first_and_the_waiting_alert_use_the_first_time_seen(
    integration: Integration, settings: Any
) -> None:
    from syncs.services import records_replay

    _reviewer(email="rita@example.com")
    settings.MLC = {**settings.MLC, "ALERT_WAITING_HOURS": 24}
    SOURCE.append({**ROW, "id": "ch_78", "account": "zz"})
    _run(integration)
    first = AuditRecord.objects.get(source_key="ch_78")
    AuditRecord.objects.filter(pk=first.pk).update(created_at=timezone.now() - timedelta(hours=30))
    records_replay(record_ids=[first.pk])  # still flagged: a new row, the same old item
    mail.outbox.clear()
    alerts_send()
    assert any("ch_78" in m.body for m in mail.outbox)


def test_an_amount_no_currency_can_hold_shows_without_an_error(
    integration: Integration, reviewer_client: Client
) -> None:
    record = AuditRecord.objects.create(
        integration=integration,
        stream="disputes",
        source_key="dp_huge",
        status=S.FLAGGED,
        reason="A dispute",
        source_payload={"kind": "dispute", "amount": -(10**30), "currency": "usd", "fee": 10**40},
        sent_payload={"amount": 10**30, "currency": "usd"},
    )
    for url in (
        f"/admin/audit/reviewitem/{record.pk}/change/",
        f"/admin/audit/auditrecord/{record.pk}/change/",
        "/admin/audit/reviewitem/",
        "/admin/audit/auditrecord/",
        f"/admin/audit/reviewitem/{record.pk}/replay/",
    ):
        answer = reviewer_client.get(url)
        assert answer.status_code == 200, url
    page = reviewer_client.get(f"/admin/audit/reviewitem/{record.pk}/change/").content.decode()
    assert "-10,000,000,000,000,000,000,000,000,000.00 USD" in page


def test_a_reviewer_has_no_cursors_page_and_the_integration_admin_has(
    integration: Integration, reviewer_client: Client, admin_client: Client
) -> None:
    _run(integration)
    assert "Cursors" not in reviewer_client.get("/admin/").content.decode()
    assert reviewer_client.get("/admin/syncs/cursor/").status_code == 403
    assert "Cursors" in admin_client.get("/admin/").content.decode()
    assert admin_client.get("/admin/syncs/cursor/").status_code == 200


def test_the_queue_groups_what_one_fix_settles_with_its_amounts_and_filters_by_erp(
    integration: Integration, reviewer_client: Client
) -> None:
    for n in range(5):  # five GBP payments waiting for one GL account
        SOURCE.append(
            {**ROW, "id": f"gb_{n}", "account": "GBP-BANK", "currency": "GBP", "customer": "C7"}
        )
    SOURCE.append({**ROW, "id": "eu_1", "account": "40", "amount_cents": "n/a"})  # fails
    _run(integration)
    page = reviewer_client.get("/admin/audit/reviewitem/").content.decode()
    grouped = page.split('id="mlc-groups"', 1)[1].split("</table>", 1)[0]
    assert "5 payments need a GL account mapping for “GBP-BANK”" in grouped
    assert "617.25 GBP" in grouped  # five of 123.45
    assert "Add the GL account mapping for GBP-BANK" in grouped  # one fix…
    assert "saving it replays all 5" in grouped  # …for all five
    listed = page.split('id="result_list"', 1)[1]
    assert listed.count("123.45 GBP") == 5 and "C7" in listed
    only = reviewer_client.get(
        "/admin/audit/reviewitem/",
        {
            "integration__id__exact": integration.pk,
            "fix_kind__exact": "gl_account",
            "fix_value__exact": "GBP-BANK",
        },
    ).content.decode()
    assert only.split('id="result_list"', 1)[1].count("123.45 GBP") == 5 and "eu_1" not in only
    failed = reviewer_client.get("/admin/audit/reviewitem/?problem=failed").content.decode()
    assert "eu_1" in failed and "gb_0" not in failed.split('id="result_list"', 1)[1]
    erp = reviewer_client.get("/admin/audit/reviewitem/?erp=CloudSuite").content.decode()
    assert erp.split('id="result_list"', 1)[1].count("123.45 GBP") == 5
    assert (
        "gb_0" not in reviewer_client.get("/admin/audit/reviewitem/?erp=IFS+Cloud").content.decode()
    )


def test_a_failing_connection_card_tells_a_reviewer_whom_to_ask_and_they_cannot_test_it(
    integration: Integration, reviewer_client: Client
) -> None:
    admin_user = User.objects.create_user(
        "ingrid", email="ingrid@example.com", first_name="Ingrid", last_name="Berg"
    )
    admin_user.groups.add(Group.objects.get_or_create(name="Integration admin")[0])
    source = integration.source
    source.status = "failing"
    source.save(update_fields=["status"])
    card = reviewer_client.get("/admin/").content.decode()
    card = card.split('id="mlc-failing-connections"', 1)[1].split("</div>\n  </div>", 1)[0]
    assert source.name in card and "ask them" in card
    assert "Ingrid Berg &lt;ingrid@example.com&gt;" in card
    assert f"/admin/connections/connection/{source.pk}/" not in card  # not a link they can open
    tried = reviewer_client.post(f"/admin/connections/connection/{source.pk}/test/")
    assert tried.status_code == 403


def test_the_queue_filter_and_its_groups_read_a_problem_the_same_way(
    integration: Integration,
) -> None:
    from syncs import queue

    SOURCE.extend(
        [
            {**ROW, "id": "m_1", "account": "NOPE"},  # needs a mapping
            {**ROW, "id": "f_1", "amount_cents": "n/a"},  # failed
        ]
    )
    TARGET.transient.add("r_1")
    SOURCE.append({**ROW, "id": "r_1", "account": "40"})  # failed, retried by itself
    _run(integration)
    items = list(AuditRecord.objects.filter(status__in=("failed", "flagged")))
    assert len(items) >= 3
    for item in items:
        kind = queue.kind_of_problem(item)
        matching = AuditRecord.objects.filter(queue.PROBLEM_QUERIES[kind], pk=item.pk)
        others = [k for k in queue.PROBLEM_QUERIES if k != kind]
        assert matching.exists(), (item.source_key, kind)
        assert not any(
            AuditRecord.objects.filter(queue.PROBLEM_QUERIES[k], pk=item.pk).exists()
            for k in others
        )
