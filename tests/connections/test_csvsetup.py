"""The CSV template set up by form from a sample file on a real SFTP server (asyncssh): columns
by dropdown, dates from examples, a preview of the first rows as they will be read, then saved
as the connection's template — no JSON — by an Integration admin; refused to a reviewer."""

from __future__ import annotations

import os
from typing import Any

import pytest
from django.test import Client

from connections.models import Connection
from connections.providers.registry import client_for
from connections.sandbox.sftp import SftpSandbox
from tests.sandbox_fixtures import stampli_connection
from tests.test_admin_site import _staff

EU = (
    "Rechnung;Lieferant;Belegnummer;Belegdatum;Waehrung;Betrag;Konto;Position;Zeilenbetrag\r\n"
    "R-1;Nord Kontor AB;NK-1;28.11.2026;SEK;1.234,50;6000;1;1.234,50\r\n"
    "R-2;Atelier Lumière SARL;AL-9;29.11.2026;EUR;99,00;6500;1;99,00\r\n"
)


@pytest.fixture
def stampli(sftp: SftpSandbox, db: Any) -> Connection:
    path = sftp.root / "outbound" / "export_eu_0800.csv"
    path.write_bytes(EU.encode("cp1252"))
    os.utime(path, (1, 1))
    conn = stampli_connection(sftp, name="Stampli EU", slug="stampli-eu")
    return conn


@pytest.fixture
def admin_user(client: Client, db: Any) -> Client:
    client.force_login(_staff("ida", groups=("Integration admin",)))
    return client


def form_data(**more: Any) -> dict[str, Any]:
    return {
        "kind": "invoices",
        "sample": "export_eu_0800.csv",
        "pattern": "export_eu_*.csv",
        "delimiter": ";",
        "encoding": "cp1252",
        "decimal": ",",
        "thousands": ".",
        "ends_with_newline": "yes",
        "layout": "combined",
        "vendor_match": "name",
        "col__invoice_id": "Rechnung",
        "col__vendor_name": "Lieferant",
        "col__invoice_number": "Belegnummer",
        "col__invoice_date": "Belegdatum",
        "col__currency": "Waehrung",
        "col__total": "Betrag",
        "col__gl_code": "Konto",
        "col__line": "Position",
        "col__amount": "Zeilenbetrag",
        "date_formats": ["%d.%m.%Y"],
        **more,
    }


def test_an_eu_profile_is_set_up_by_form_previewed_then_saved(
    admin_user: Client, stampli: Connection
) -> None:
    page = f"/admin/connections/connection/{stampli.pk}/csv-template/"
    change = admin_user.get(f"/admin/connections/connection/{stampli.pk}/change/")
    assert page in change.content.decode()  # the way in, on the connection's page
    first = admin_user.get(page).content.decode()
    assert "export_eu_0800.csv" in first and "28/11/2026" in first  # files; dates by example

    read = admin_user.post(page, form_data(read="1", date_formats=[])).content.decode()
    assert "Rechnung" in read and "Belegdatum" in read  # the sample's own columns to choose
    assert "<code>%d.%m.%Y</code> reads the sample" in read  # which format reads its dates

    preview = admin_user.post(page, form_data(preview="1")).content.decode()
    assert "as it will be read" in preview and "2026-11-28" in preview and "1234.50" in preview
    stampli.refresh_from_db()
    assert not stampli.settings.get("csv_template")  # nothing saved by a preview

    wrong = admin_user.post(page, form_data(save="1", col__total="")).content.decode()
    assert "Choose the column of every field this kind of file needs: Total." in wrong
    saved = admin_user.post(page, form_data(save="1"))
    assert saved.status_code == 302, saved.content.decode().split('class="errorlist')[1:3]
    stampli.refresh_from_db()
    template = stampli.settings["csv_template"]
    assert (template["delimiter"], template["layout"], template["vendor_match"]) == (
        ";",
        "combined",
        "name",
    )
    assert template["files"]["invoices"]["columns"]["total"] == "Betrag"
    assert template["files"]["invoices"]["date_formats"] == ["%d.%m.%Y"]
    client = client_for(Connection.objects.get(pk=stampli.pk))
    (found,) = client.complete_files("invoices")
    rows = client.read_export("invoices", found).parsed.rows
    assert [r.values["vendor_name"] for r in rows] == ["Nord Kontor AB", "Atelier Lumière SARL"]


def test_a_preview_says_when_the_settings_do_not_read_the_file(
    admin_user: Client, stampli: Connection
) -> None:
    page = f"/admin/connections/connection/{stampli.pk}/csv-template/"
    shown = admin_user.post(page, form_data(preview="1", date_formats=["%Y-%m-%d"]))
    text = shown.content.decode()
    assert "is not a date like %Y-%m-%d" in text and "would not be posted" in text


def test_a_reviewer_cannot_change_a_template(client: Client, stampli: Connection) -> None:
    client.force_login(_staff("rita", groups=("Finance reviewer",)))
    page = f"/admin/connections/connection/{stampli.pk}/csv-template/"
    answer = client.post(page, form_data(save="1"))
    assert answer.status_code in (302, 403)
    stampli.refresh_from_db()
    assert not stampli.settings.get("csv_template")
