"""Credentials at rest: encrypted, rotatable, validated per kind, write-only in the admin."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from cryptography.fernet import InvalidToken
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection as db

from connections.models import Connection, OAuthToken
from mlconnector.logfilters import RedactingFilter
from tests.conftest import IONAPI

OLD = "old-key-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
NEW = "new-key-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"


def raw_column(table: str, column: str, pk: int) -> bytes:
    with db.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])  # noqa: S608
        return bytes(cursor.fetchone()[0])


def test_no_plaintext_secret_in_the_database(make_connection: Any) -> None:
    conn = make_connection("infor_m3")
    OAuthToken.objects.create(
        connection=conn, access_token="access-token-plain", refresh_token="refresh-token-plain"
    )
    raw = raw_column("connections_connection", "credentials", conn.pk)
    for secret in (IONAPI["cs"], IONAPI["sask"], IONAPI["saak"], "ACME_TST"):
        assert secret.encode() not in raw
    assert raw.startswith(b"gAAAAA")  # a Fernet token
    token_raw = raw_column("connections_oauthtoken", "access_token", OAuthToken.objects.get().pk)
    assert b"access-token-plain" not in token_raw
    assert Connection.objects.get(pk=conn.pk).credentials["sask"] == IONAPI["sask"]


def test_key_rotation_first_key_encrypts_all_decrypt(make_connection: Any, settings: Any) -> None:
    settings.FERNET_KEYS = [OLD]
    conn = make_connection("stripe")
    before = raw_column("connections_connection", "credentials", conn.pk)

    settings.FERNET_KEYS = [NEW, OLD]  # new key first: old data still readable
    assert Connection.objects.get(pk=conn.pk).credentials["api_key"].startswith("sk_test_")
    call_command("reencrypt_secrets", stdout=open("/dev/null", "w"))
    assert raw_column("connections_connection", "credentials", conn.pk) != before

    settings.FERNET_KEYS = [NEW]  # old key dropped: everything was re-encrypted
    assert Connection.objects.get(pk=conn.pk).credentials["api_key"].startswith("sk_test_")
    settings.FERNET_KEYS = [OLD]
    with pytest.raises(InvalidToken):
        Connection.objects.get(pk=conn.pk)


@pytest.mark.parametrize(
    ("kind", "credentials", "message"),
    [
        ("stripe", {"api_key": "pk_test_123456"}, "never a publishable"),
        ("stripe", {}, "Secret key (api_key) is required"),
        ("stripe", {"api_key": "sk_test_1", "apikey": "typo"}, "Unknown credential fields: apikey"),
        ("infor_m3", {k: v for k, v in IONAPI.items() if k != "cs"}, "(cs) is required"),
    ],
)
def test_credentials_are_validated_per_kind(
    db: Any, kind: str, credentials: dict, message: str
) -> None:
    conn = Connection(name="x", slug="x", kind=kind, credentials=credentials)
    with pytest.raises(ValidationError) as info:
        conn.full_clean()
    assert message in " ".join(info.value.messages)


def test_settings_get_defaults_and_are_typed(db: Any) -> None:
    conn = Connection(
        name="x",
        slug="x",
        kind="infor_m3",
        credentials=dict(IONAPI),
        settings={"cono": "200", "rate_limit_per_minute": "120"},
    )
    conn.full_clean()
    assert conn.settings["cono"] == 200 and conn.settings["rate_limit_per_minute"] == 120
    assert conn.settings["read_timeout"] == 30.0
    conn.settings["read_timeout"] = "soon"
    with pytest.raises(ValidationError, match="not a number"):
        conn.full_clean()


def test_log_lines_are_scrubbed() -> None:
    record = logging.LogRecord(
        "x",
        logging.INFO,
        __file__,
        1,
        "POST with Authorization: Bearer abcdefghijklmnop and %s",
        ("client_secret=topsecretvalue&sk_live_abcdefghijkl",),
        None,
    )
    RedactingFilter().filter(record)
    message = record.getMessage()
    assert "abcdefghijklmnop" not in message and "topsecretvalue" not in message
    assert "sk_live_abcdefghijkl" not in message


def test_program_overrides_are_lines_checked_against_what_we_call(db: Any) -> None:
    conn = Connection(
        name="x",
        slug="x",
        kind="infor_m3",
        credentials=dict(IONAPI),
        settings={"programs": "receipts.head = ars040mi/AddBatchHead2"},
    )
    conn.full_clean()
    assert conn.settings["programs"] == {"receipts.head": "ARS040MI/AddBatchHead2"}
    conn.settings["programs"] = "reciepts.head = ARS040MI/AddBatchHead"
    with pytest.raises(ValidationError, match="not something ml-connector calls"):
        conn.full_clean()
