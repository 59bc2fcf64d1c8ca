"""Month-end in a real browser as a Finance reviewer, at 1366 and at 1920 px: the overview's
money and its 30 days, the queue grouped by what settles it, one fix for the group, the record
as the document it posted, collections found by the customer's name, the quotes list — and no
table wider than the box it sits in.  Screenshots go to ``var/screenshots`` (``MLC_SCREENSHOTS``
elsewhere), one set per width."""

from __future__ import annotations

from typing import Any

import pytest

from audit.models import AuditRecord
from connections.models import Connection
from syncs.models import Integration
from tests.browser.test_finance_admin import HEIGHT, _columns_fit, _log_in, _reviewer, _shots

pytestmark = pytest.mark.django_db(transaction=True)


def _ids_broken(page: Any) -> list[str]:
    """Ids (``.mlc-id``) laid out on more than one line."""
    return page.evaluate(
        """() => [...document.querySelectorAll('.mlc-id')]
            .filter(e => e.getClientRects().length > 1
                         || e.getBoundingClientRect().height
                            > 1.9 * parseFloat(getComputedStyle(e).fontSize))
            .map(e => e.textContent)"""
    )


def _a_quote_overdue(m3: Connection, wise: Connection) -> None:
    """A Wise quote prepared for a supplier invoice whose due date has passed."""
    quotes = Integration.objects.create(
        name="Supplier invoices to Wise quotes",
        slug="quotes",
        flow="m3_wise.quotes",
        source=m3,
        target=wise,
    )
    AuditRecord.objects.create(
        integration=quotes,
        stream="quotes",
        source_key="S2001/INV-0002-2",
        target_key="92c10ace-8ac5-4c0b-ae86-45e376f4a0b1",
        status=AuditRecord.Status.SYNCED,
        reason="Quote ready: make the transfer from it in Wise.",
        amount="873.6",
        currency="EUR",
        party="S2001",
        party_name="Kaffeerösterei Nord GmbH",
        document="INV-0002-2",
        response_summary={
            "SUNO": "S2001",
            "SINO": "INV-0002-2",
            "DUDT": "20261103",
            "target_amount": "873.6",
            "target_currency": "EUR",
            "source_amount": "873.6",
            "source_currency": "EUR",
            "rate": 1.0,
            "expires": "2026-12-03T05:02:00Z",
        },
    )


@pytest.mark.parametrize("width", [1366, 1920])
def test_a_reviewer_closes_the_month_from_the_overview(
    browser: Any,
    flagged: dict[str, Any],
    wise_connection: Connection,
    width: int,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _reviewer()
    _a_quote_overdue(flagged["payments"].target, wise_connection)
    shots = _shots() / f"month-end-{width}"
    shots.mkdir(exist_ok=True)
    base, item = flagged["url"], flagged["item"]
    context = browser.new_context(viewport={"width": width, "height": HEIGHT})
    page = context.new_page()
    try:
        _log_in(page, base)
        # The month's money: what waits is 300.00 EUR, and the 30 days are drawn.
        money = page.inner_text("#mlc-money").lower()  # headings are set in capitals
        assert "waiting for review" in money and "300.00 eur" in money
        assert page.locator("#mlc-days rect.mlc-bar-posted").count() == 30
        first = page.locator("#mlc-integrations tbody tr:not(.mlc-group)").first
        assert "Needs attention" in first.inner_text()  # what needs them comes first
        group = page.locator("#mlc-integrations tr.mlc-group th").first.inner_text()
        assert group.lower() == "cloudsuite"
        table = page.evaluate(
            "document.querySelector('#mlc-integrations').getBoundingClientRect().width"
        )
        assert table >= 0.9 * (width - 60)  # the page's width, no empty side column
        page.screenshot(path=str(shots / "overview.png"), full_page=True)
        assert _columns_fit(page) == []

        # The queue, grouped: one line per fix, with its amount; the fix replays the group.
        page.click("#mlc-waiting a")
        page.wait_for_selector("#mlc-groups")
        group = page.locator("#mlc-groups tbody tr").first
        text = group.inner_text()
        assert "1 payment needs a GL account mapping for “stripe_receipts:EUR”" in text
        assert "300.00 EUR" in text
        assert _ids_broken(page) == []  # a Stripe id is never broken inside
        listed = page.inner_text("#result_list")
        assert "C100" in listed and "Acme Stores" in listed and "300.00 EUR" in listed
        page.screenshot(path=str(shots / "queue.png"), full_page=True)
        assert _columns_fit(page) == []
        group.locator("a.button").click()
        page.wait_for_selector("#id_target_value")
        page.fill("#id_target_value", "1930")
        page.click("input[name=_save]")
        page.wait_for_selector("#mlc-item")
        page.wait_for_function(
            "document.getElementById('mlc-state').textContent.includes('synced')", timeout=30000
        )

        # The record the replay posted, as a document: the receipt's debit and credit.
        replay = AuditRecord.objects.get(replay_of=item)
        page.goto(f"{base}/admin/audit/auditrecord/{replay.pk}/change/")
        posting = page.inner_text("#mlc-posting")
        assert "Posted to CloudSuite" in posting and "1930" in posting
        assert "Customer C100, invoice 9002" in posting and posting.count("300.00 EUR") == 2
        assert "Total EUR\t309.00 EUR\t309.00 EUR" in posting  # the fee too; it balances
        assert not page.locator("#mlc-technical").evaluate("d => d.open")  # folded
        page.screenshot(path=str(shots / "record.png"), full_page=True)
        assert _columns_fit(page) == []

        # Collections, found by the customer's name, totals as the rows show them.
        page.goto(f"{base}/admin/audit/collection/?q=Acme")
        assert page.locator("#result_list tbody tr").count() == 1
        assert "300.00 EUR" in page.inner_text("#mlc-totals")
        assert _ids_broken(page) == []
        page.screenshot(path=str(shots / "collections.png"), full_page=True)
        assert _columns_fit(page) == []

        page.goto(f"{base}/admin/audit/paymentquote/")
        quote = page.inner_text("#result_list tbody tr")
        assert "873.60 EUR" in quote and "overdue" in quote and "Kaffeerösterei" in quote
        for listing in ("audit/paymentquote", "syncs/syncrun", "audit/reviewitem"):
            page.goto(f"{base}/admin/{listing}/")
            page.screenshot(path=str(shots / f"{listing.replace('/', '-')}.png"), full_page=True)
            assert _columns_fit(page) == [], listing
        assert "Cursors" not in page.inner_text("#nav-sidebar, #content")
    finally:
        context.close()
    with capsys.disabled():
        print(f"\nScreenshots of month-end at {width} px: {shots}")
