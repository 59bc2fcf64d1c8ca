"""Setting up a Stampli CSV template in a real browser (chromium, 1366 px), as the Integration
admin who keeps the connections: a sample read from the SFTP server, columns picked from its
header, the date format ticked from examples, the first rows previewed, then saved — no JSON,
and no page wider than the window."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission, User

from connections.sandbox.sftp import SftpSandbox
from tests.browser.test_finance_admin import (  # noqa: F401  (the browser fixture)
    HEIGHT,
    PASSWORD,
    WIDTH,
    _log_in,
    _shots,
    browser,
)
from tests.sandbox_fixtures import stampli_connection

pytestmark = pytest.mark.django_db(transaction=True)

SAMPLE = (
    "Beleg;Lieferant;Nummer;Datum;Waehrung;Betrag;Konto;Zeilenbetrag\r\n"
    "R-1;Nord Kontor AB;NK-1;28.11.2026;SEK;1.234,50;6000;1.234,50\r\n"
    "R-2;Atelier Lumière SARL;AL-9;29.11.2026;EUR;99,00;6500;99,00\r\n"
)


def _integration_admin() -> User:
    """A user in the Integration admin group, with the group's grants as migrated."""
    groups = importlib.import_module("syncs.migrations.0004_permission_groups")
    group, _ = Group.objects.get_or_create(name="Integration admin")
    for app, codes in groups.ADMIN.items():
        for code in codes:
            group.permissions.add(
                Permission.objects.get(content_type__app_label=app, codename=code)
            )
    user = User.objects.create_user("ida", password=PASSWORD, is_staff=True)
    user.groups.add(group)
    return user


@pytest.fixture
def eu_stampli(sftp: SftpSandbox, live_server: Any) -> dict[str, Any]:
    path = sftp.root / "outbound" / "export_eu_0800.csv"
    path.write_bytes(SAMPLE.encode("cp1252"))
    os.utime(path, (1, 1))
    conn = stampli_connection(sftp, name="Stampli EU", slug="stampli-eu")
    return {"connection": conn, "url": live_server.url}


def test_an_integration_admin_sets_up_an_eu_template_from_a_sample(
    browser: Any,  # noqa: F811  (the fixture imported above)
    eu_stampli: dict[str, Any],
) -> None:
    _integration_admin()
    shots: Path = _shots()
    base, conn = eu_stampli["url"], eu_stampli["connection"]
    context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT})
    page = context.new_page()
    try:
        page.goto(f"{base}/admin/login/?next=/admin/")
        page.fill("#id_username", "ida")
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        page.goto(f"{base}/admin/connections/connection/{conn.pk}/change/")
        page.click("text=Set up the CSV template from a sample file")
        page.wait_for_selector("#id_sample")
        page.select_option("#id_sample", "export_eu_0800.csv")
        page.select_option("#id_delimiter", ";")
        page.select_option("#id_encoding", "cp1252")
        page.select_option("#id_decimal", ",")
        page.select_option("#id_thousands", ".")
        page.select_option("#id_layout", "combined")
        page.select_option("#id_vendor_match", "name")
        page.fill("#id_pattern", "export_eu_*.csv")
        page.click("input[name=read]")
        page.wait_for_selector("text=Its columns:")
        for field, column in (
            ("invoice_id", "Beleg"),
            ("vendor_name", "Lieferant"),
            ("invoice_number", "Nummer"),
            ("invoice_date", "Datum"),
            ("currency", "Waehrung"),
            ("total", "Betrag"),
            ("gl_code", "Konto"),
            ("amount", "Zeilenbetrag"),
        ):
            page.select_option(f"#id_col__{field}", column)
        page.click("input[name=preview]")
        page.wait_for_selector("text=reads the sample")
        assert "%d.%m.%Y" in page.inner_text(".mlc-why")  # the format that reads its dates
        page.check("input[value='%d.%m.%Y']")
        page.uncheck("input[value='%Y-%m-%d']")
        page.click("input[name=preview]")
        page.wait_for_selector("#preview")
        table = page.inner_text("#preview")
        assert "2026-11-28" in table and "1234.50" in table and "Atelier Lumière SARL" in table
        assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH  # no side scroll
        page.screenshot(path=str(shots / "csv-template.png"), full_page=True)
        page.click("input[name=save]")
        page.wait_for_selector(".messagelist .success")
        assert "Saved the invoices part" in page.inner_text(".messagelist")
    finally:
        context.close()
    conn.refresh_from_db()
    template = conn.settings["csv_template"]
    assert template["files"]["invoices"]["columns"]["total"] == "Betrag"
    assert template["files"]["invoices"]["date_formats"] == ["%d.%m.%Y"]
    assert (template["delimiter"], template["layout"]) == (";", "combined")
