"""The connection admin: add by kind, .ionapi upload, write-only secrets."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from connections.models import Connection
from tests.conftest import IONAPI, ionapi_bytes

ADD = "/admin/connections/connection/add/"


@pytest.fixture
def staff(admin_client: Client) -> Client:
    return admin_client


def test_add_starts_by_choosing_the_system(staff: Client) -> None:
    page = staff.get(ADD).content.decode()
    assert "Infor CloudSuite (M3)" in page and "?kind=stripe" in page


def test_an_infor_connection_is_created_from_its_ionapi_file(staff: Client) -> None:
    response = staff.post(
        ADD + "?kind=infor_m3",
        {
            "name": "CloudSuite TST",
            "slug": "cloudsuite-tst",
            "kind": "infor_m3",
            "credentials_file": SimpleUploadedFile("ACME.ionapi", ionapi_bytes()),
            "setting__cono": "100",
            "setting__divi": "AAA",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    conn = Connection.objects.get(slug="cloudsuite-tst")
    assert conn.credentials["sask"] == IONAPI["sask"] and conn.settings["divi"] == "AAA"

    page = staff.get(f"/admin/connections/connection/{conn.pk}/change/").content.decode()
    assert "ACME_TST" in page  # the tenant is not secret
    for secret in (IONAPI["cs"], IONAPI["sask"], IONAPI["saak"]):
        assert secret not in page


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"{oops", "not valid JSON"), (ionapi_bytes(sask=""), "lacks required keys: sask")],
)
def test_a_malformed_ionapi_file_is_a_form_error_and_nothing_is_saved(
    staff: Client,
    content: bytes,
    message: str,
) -> None:
    response = staff.post(
        ADD + "?kind=infor_m3",
        {
            "name": "Bad",
            "slug": "bad",
            "kind": "infor_m3",
            "credentials_file": SimpleUploadedFile("x.ionapi", content),
            "setting__cono": "100",
        },
    )
    page = response.content.decode()
    assert response.status_code == 200 and message in page
    assert "is required" not in page  # one precise error, not a list of consequences
    assert not Connection.objects.exists()


def test_secrets_are_write_only_and_blank_keeps_them(staff: Client, make_connection: Any) -> None:
    conn = make_connection("stripe")
    api_key, signing_secret = conn.credentials["api_key"], conn.credentials["webhook_secret"]
    url = f"/admin/connections/connection/{conn.pk}/change/"
    page = staff.get(url).content.decode()
    assert api_key not in page and signing_secret not in page
    assert "Leave blank to keep the current value." in page
    form = {
        "name": "Stripe renamed",
        "slug": conn.slug,
        "kind": "stripe",
        "cred__api_key": "",
        "cred__webhook_secret": "",
        "setting__base_url": "http://127.0.0.1:8100",
        "setting__rate_limit_per_minute": "600",
        "setting__rate_limit_burst": "10",
        "setting__connect_timeout": "5",
        "setting__read_timeout": "30",
        "setting__max_attempts": "5",
        "setting__max_retry_seconds": "120",
    }
    assert staff.post(url, form).status_code == 302
    conn.refresh_from_db()
    assert conn.name == "Stripe renamed" and conn.credentials["api_key"] == api_key
    assert conn.settings["base_url"] == "http://127.0.0.1:8100"
    form["cred__api_key"] = "pk_live_oops"
    response = staff.post(url, form)
    assert response.status_code == 200 and "never a publishable" in response.content.decode()


def test_rotate_the_stripe_key_from_the_admin(staff: Client, stripe_connection: Any) -> None:
    old = stripe_connection.credentials["api_key"]
    page = staff.post(
        "/admin/connections/connection/",
        {"action": "rotate_key", "_selected_action": [stripe_connection.pk]},
        follow=True,
    )
    text = page.content.decode()
    assert page.status_code == 200 and "New key ak_" in text and "keeps working until" in text
    stripe_connection.refresh_from_db()
    new = stripe_connection.credentials["api_key"]
    assert new != old and new not in text and old not in text  # no secret is ever shown
    change = staff.get(f"/admin/connections/connection/{stripe_connection.pk}/change/")
    assert "Key rotations" in change.content.decode() and new not in change.content.decode()
    listing = staff.get("/admin/connections/keyrotation/")
    assert listing.status_code == 200 and stripe_connection.settings["api_key_id"] in (
        listing.content.decode()
    )
