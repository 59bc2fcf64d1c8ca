"""The finance admin in a real browser: Debian's chromium, headless, driven by Playwright at
1366 px — a finance reviewer logs in, reads the overview, opens the queue, fixes an unmapped GL
account from the item page, replays it and sees it synced; connections stay closed to them.

Screenshots of the overview, the queue, the item and the run are saved to a folder the test
prints (``var/screenshots`` unless ``MLC_SCREENSHOTS`` says otherwise).
"""

from __future__ import annotations

import importlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, Permission, User

from audit.models import AuditRecord
from connections.models import Connection
from connections.sandbox.base import Served
from connections.sandbox.m3 import M3Simulator
from connections.sandbox.stripe import StripeSimulator
from syncs.models import FieldMapping, Integration, SyncRun
from syncs.runner import Runner

pytestmark = pytest.mark.django_db(transaction=True)

CHROMIUM = os.environ.get("MLC_CHROMIUM", "/usr/bin/chromium")
WIDTH, HEIGHT = 1366, 900
PASSWORD = "a-long-reviewer-password-9"


def _shots() -> Path:
    folder = Path(os.environ.get("MLC_SCREENSHOTS", settings.VAR_DIR / "screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium through Playwright; skipped only where it is not installed and CI did
    not ask for it (``MLC_REQUIRE_BROWSER=1`` makes a missing browser a failure)."""
    if not shutil.which(CHROMIUM):
        if os.environ.get("MLC_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls stay
    # synchronous and ordered around its calls.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
            ],
        )
        yield chromium
        chromium.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


def _reviewer() -> User:
    """A user in the Finance reviewer group, with exactly the group's grants as migrated."""
    groups = importlib.import_module("syncs.migrations.0004_permission_groups")
    grants = importlib.import_module("syncs.migrations.0014_finance_admin_grants")
    group, _ = Group.objects.get_or_create(name="Finance reviewer")
    wanted = [(app, code) for app, codes in groups.REVIEWER.items() for code in codes]
    wanted += grants.GRANTS["Finance reviewer"]
    for app, code in wanted:
        group.permissions.add(Permission.objects.get(content_type__app_label=app, codename=code))
    user = User.objects.create_user("reviewer", password=PASSWORD, is_staff=True)
    user.groups.add(group)
    return user


@pytest.fixture
def flagged(
    m3_sim: Served,
    stripe_sim: Served,
    m3_connection: Connection,
    stripe_connection: Connection,
    live_server: Any,
) -> dict[str, Any]:
    """CloudSuite invoices in Stripe, a payment of one of them, and no GL account mapped for
    Stripe receipts: the payment waits in the review queue."""
    m3: M3Simulator = m3_sim.app  # type: ignore[assignment]
    stripe: StripeSimulator = stripe_sim.app  # type: ignore[assignment]
    m3.state.put_customer("C100", CUNM="Acme Stores", CUCD="EUR")
    m3.state.put_account("1930", "Bank EUR")
    m3.state.put_account("FEE", "Card fees")
    m3.state.add_invoice("C100", "9002", "300.00", "EUR", ivdt="20261102", dudt="20271231")
    made = {}
    for flow, name, source, target in (
        ("m3_stripe.customers", "Customers to Stripe", m3_connection, stripe_connection),
        ("m3_stripe.invoices", "Invoices to Stripe", m3_connection, stripe_connection),
        ("stripe_m3.payments", "Stripe payments to CloudSuite", stripe_connection, m3_connection),
    ):
        integ = Integration(
            name=name, slug=flow.replace(".", "-"), flow=flow, source=source, target=target
        )
        integ.full_clean()
        integ.save()
        made[flow] = integ
    for flow in ("m3_stripe.customers", "m3_stripe.invoices"):
        Runner(made[flow], trigger="manual").run()
    payments = made["stripe_m3.payments"]
    FieldMapping.objects.create(
        integration=payments, kind="charge_code", source_value="stripe_fees", target_value="FEE"
    )
    stripe.webhooks.endpoints.append(
        {
            "url": f"{live_server.url}/webhooks/stripe/{stripe_connection.slug}/",
            "secret": stripe_connection.credentials["webhook_secret"],
        }
    )
    (invoice,) = [
        i for i in stripe.objects["invoice"].values() if i["metadata"]["m3_invoice"] == "9002"
    ]
    stripe.act(lambda: stripe.pay_invoice(invoice["id"], None))
    item = AuditRecord.objects.get(integration=payments, status="flagged", resolved_at=None)
    assert item.fix_kind == "gl_account" and item.fix_value == "stripe_receipts:EUR"
    return {"m3": m3, "payments": payments, "item": item, "url": live_server.url}


def _log_in(page: Any, base: str, username: str = "reviewer") -> None:
    """Log in as the reviewer (or another user), as a person does, and land on the overview."""
    page.goto(f"{base}/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#mlc-integrations")


def _columns_fit(page: Any) -> list[str]:
    """What does not fit the page (none should): every table in the content measured against
    the box it sits in — a list cut inside its scrolling box counts, not only past the window —
    and the list's column headers that end past that box or the window."""
    return page.evaluate(
        """(width) => {
            const out = [];
            for (const table of document.querySelectorAll('#content table')) {
                const box = table.parentElement;
                if (table.scrollWidth > box.clientWidth + 1) {
                    out.push(`${table.id || table.className || 'table'}: ` +
                             `${table.scrollWidth} px in ${box.clientWidth} px`);
                }
            }
            const box = document.querySelector('.results') || document.body;
            const edge = Math.min(width, box.getBoundingClientRect().right);
            return out.concat([...document.querySelectorAll('#result_list thead th')]
                .filter(th => th.getBoundingClientRect().right > edge + 1)
                .map(th => th.innerText.trim()));
        }""",
        page.viewport_size["width"],
    )


def test_a_reviewer_fixes_an_unmapped_gl_account_from_the_item_page_and_replays_it(
    browser: Any, flagged: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    _reviewer()
    shots = _shots()
    base, item = flagged["url"], flagged["item"]
    context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT})
    page = context.new_page()
    try:
        _log_in(page, base)

        # The overview: every integration's health, and what waits.
        row = page.locator("#mlc-integrations tr", has_text="Stripe payments to CloudSuite")
        assert "Needs attention" in row.inner_text()
        assert page.locator("#mlc-waiting .n").inner_text().strip() == "1"
        page.screenshot(path=str(shots / "overview.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH  # no side scroll

        # The queue: one item, its plain reason, the fix.
        page.click("#mlc-waiting a")
        page.wait_for_selector("#result_list")
        rows = page.locator("#result_list tbody tr")
        assert rows.count() == 1
        text = rows.first.inner_text()
        assert "No GL account is mapped for Stripe receipts" in text
        assert "Add the GL account mapping for stripe_receipts:EUR" in text
        page.screenshot(path=str(shots / "queue.png"), full_page=True)
        assert _columns_fit(page) == []

        # The item page: reason, fix, Replay and Dismiss.
        rows.first.locator("th a, td.field-record a").first.click()
        page.wait_for_selector("#mlc-item")
        assert "No GL account is mapped" in page.inner_text("#mlc-reason")
        assert (
            page.locator("#mlc-replay").is_visible() and page.locator("#mlc-dismiss").is_visible()
        )
        page.screenshot(path=str(shots / "item.png"), full_page=True)

        # Fix it: the mapping form comes prefilled; saving replays the item.
        page.click("#mlc-fix")
        page.wait_for_selector("#id_target_value")
        assert page.input_value("#id_source_value") == "stripe_receipts:EUR"
        assert page.input_value("#id_kind") == "gl_account"
        page.fill("#id_target_value", "1930")
        page.click("input[name=_save]")
        page.wait_for_selector("#mlc-item")
        assert "queued 1 item(s) for replay" in page.inner_text(".messagelist")
        page.wait_for_function(
            "document.getElementById('mlc-state').textContent.includes('synced')", timeout=30000
        )
        assert "Replayed and synced" in page.inner_text("#mlc-state")
    finally:
        context.close()

    (receipt,) = flagged["m3"].state.receipts()
    assert receipt["CINO"] == "9002"
    assert flagged["m3"].state.gl[0]["AIT"][0] == "1930"
    item.refresh_from_db()
    replay = item.replays.get()
    assert item.resolved_at is not None and replay.status == "synced"

    context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT})
    page = context.new_page()
    try:
        _log_in(page, base)
        # The run that replayed it, and the list of runs.
        run = SyncRun.objects.get(pk=replay.run_id)
        page.goto(f"{base}/admin/syncs/syncrun/{run.pk}/change/")
        assert "Succeeded" in page.inner_text("#content")
        assert "1 synced" in page.inner_text("#mlc-run")
        assert page.locator("#mlc-run-records tbody tr").count() == 1
        page.screenshot(path=str(shots / "run.png"), full_page=True)
        page.goto(f"{base}/admin/syncs/syncrun/?show=all")
        page.screenshot(path=str(shots / "runs.png"), full_page=True)
        assert _columns_fit(page) == []
        page.goto(f"{base}/admin/audit/auditrecord/")
        page.screenshot(path=str(shots / "audit.png"), full_page=True)
        assert _columns_fit(page) == []
        page.goto(f"{base}/admin/audit/postingledger/")
        page.screenshot(path=str(shots / "ledger.png"), full_page=True)
        assert _columns_fit(page) == []
        page.goto(f"{base}/admin/audit/collection/")
        assert page.locator("#mlc-totals tbody tr").count() == 1  # EUR
        page.screenshot(path=str(shots / "collections.png"), full_page=True)
        assert _columns_fit(page) == []
        for listing in (
            "audit/paymentquote",
            "syncs/webhookevent",
            "syncs/integration",
            "syncs/fieldmapping",
            "syncs/alertsent",
        ):
            page.goto(f"{base}/admin/{listing}/")
            assert page.locator("#changelist").count() == 1, listing
            page.screenshot(path=str(shots / f"{listing.replace('/', '-')}.png"), full_page=True)
            assert _columns_fit(page) == [], listing
        # Month-end: the reconciliation from the overview's form.
        page.goto(f"{base}/admin/")
        page.click("#mlc-reconciliation button")
        page.wait_for_selector("#mlc-reconcile-verdict")
        assert "Balanced" in page.inner_text("#mlc-reconcile-verdict")
        page.screenshot(path=str(shots / "reconcile.png"), full_page=True)
        # Connections (and their secrets) are not the reviewer's.
        refused = page.goto(f"{base}/admin/connections/connection/")
        assert refused is not None and refused.status == 403
    finally:
        context.close()
    with capsys.disabled():
        print(f"\nScreenshots of the finance admin (1366 px): {shots}")


def _view_only() -> User:
    """Staff who may look at everything and change nothing (every view permission)."""
    user = User.objects.create_user("looker", password=PASSWORD, is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__startswith="view_"))
    return user


@pytest.mark.parametrize("who", ["reviewer", "looker"])
def test_reviewers_and_view_only_staff_open_every_page_the_overview_links_to(
    browser: Any, flagged: dict[str, Any], who: str
) -> None:
    _reviewer() if who == "reviewer" else _view_only()
    base = flagged["url"]
    context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT})
    page = context.new_page()
    try:
        _log_in(page, base, who)
        links = page.evaluate(
            """() => [...new Set([...document.querySelectorAll('#content a[href^="/admin/"]')]
                 .map(a => a.getAttribute('href')))]"""
        )
        integration = flagged["payments"]
        links.append(f"/admin/syncs/integration/{integration.pk}/change/")
        links.append(f"/admin/audit/reviewitem/{flagged['item'].pk}/change/")
        opened = []
        for link in links:
            if "logout" in link:
                continue
            answer = page.goto(f"{base}{link}")
            assert answer is not None and answer.status < 500, (who, link, answer and answer.status)
            assert "Server Error" not in page.content(), (who, link)
            opened.append(link)
        assert len(opened) >= 8, opened
        # Nothing to run: no action that acts is offered to a viewer.
        page.goto(f"{base}/admin/django_q/success/")
        actions = page.locator("select[name=action] option").all_inner_texts()
        assert not any("Resubmit" in a for a in actions), actions
    finally:
        context.close()
