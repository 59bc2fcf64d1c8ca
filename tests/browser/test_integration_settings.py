"""An integration's settings in a real browser (chromium, 1366 px): the Integration admin edits
the fields its flow declares — a wrong value is refused beside its field, a right one saved —
and a Finance reviewer, who may only look, reads them with their defaults; no page is wider
than the window."""

from __future__ import annotations

from typing import Any

import pytest

from syncs.models import Integration
from tests.browser.test_csv_template import _integration_admin
from tests.browser.test_finance_admin import (  # noqa: F401  (the browser fixture)
    HEIGHT,
    PASSWORD,
    WIDTH,
    _log_in,
    _reviewer,
    _shots,
    browser,
)

pytestmark = pytest.mark.django_db(transaction=True)


def _fits(page: Any) -> bool:
    return bool(page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth"))


def test_settings_are_fields_an_admin_edits_and_a_reviewer_reads(
    browser: Any,  # noqa: F811  (the fixture imported above)
    live_server: Any,
    make_connection: Any,
) -> None:
    payments = Integration(
        name="Stripe payments",
        slug="stripe-payments",
        flow="stripe_m3.payments",
        source=make_connection("stripe"),
        target=make_connection("infor_m3"),
    )
    payments.full_clean()
    payments.save()
    _integration_admin()
    _reviewer()
    url = f"{live_server.url}/admin/syncs/integration/{payments.pk}/change/"
    page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
    page.goto(f"{live_server.url}/admin/login/?next=/admin/syncs/integration/")
    page.fill("#id_username", "ida")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.goto(url)
    field = page.locator("#id_setting__receipts_per_request")
    assert field.get_attribute("placeholder") == "25"  # the default, as a hint
    field.fill("two")
    page.click("input[name=_continue]")
    error = page.locator(".field-setting__receipts_per_request .errorlist")
    assert "“two” is not a whole number." in error.inner_text()
    assert _fits(page)
    page.screenshot(path=str(_shots() / "integration-settings-refused.png"), full_page=True)
    page.fill("#id_setting__receipts_per_request", "10")
    page.select_option("#id_setting__receipt_batches", "payout")
    page.click("input[name=_continue]")
    page.wait_for_selector(".messagelist .success")
    payments.refresh_from_db()
    assert payments.settings == {"receipts_per_request": 10, "receipt_batches": "payout"}
    page.close()

    page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
    _log_in(page, live_server.url)
    page.goto(url)
    table = page.locator("table.mlc-settings").inner_text()
    assert "Receipt batches\tpayout" in table and "Batch type\tST (default)" in table
    assert page.locator("#id_setting__receipts_per_request").count() == 0  # read, not edited
    assert _fits(page)
    page.screenshot(path=str(_shots() / "integration-settings-reviewer.png"), full_page=True)
    page.close()
