"""The Stampli provider over a real SFTP server (asyncssh) on loopback: the provider contract,
complete files only (a settle time or a .done marker), parsed exports, refused files, archive."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connections.models import Connection
from connections.providers.registry import client_for
from connections.providers.stampli import StampliSftp
from connections.sandbox.sftp import SftpSandbox
from tests.connections.providers.contract import ProviderContract
from tests.sandbox_fixtures import stampli_connection

INVOICES = (
    "Invoice ID,Vendor ID,Vendor Name,Invoice Number,Invoice Date,Due Date,Currency,"
    "Total Amount\r\n"
    'ST-1,V-1,Nord AB,N-1,2026-11-01,2026-12-01,SEK,"1,250.00"\r\n'
)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SftpSandbox]:
    outbound = tmp_path / "root" / "outbound"
    outbound.mkdir(parents=True)
    old = time.time() - 3600
    for name in ("invoices_20261101.csv", "payments_20261101.csv"):
        (outbound / name).write_text(INVOICES if name.startswith("inv") else "x")
        os.utime(outbound / name, (old, old))
    (outbound / "invoices_20261102.csv").write_text(INVOICES[:60])  # still being written
    served = SftpSandbox(tmp_path / "root").start()
    yield served
    served.stop()


def connect(server: SftpSandbox, **settings: Any) -> Connection:
    return stampli_connection(server, connect_timeout=5, max_attempts=2, **settings)


class TestStampliContract(ProviderContract):
    provider = StampliSftp
    secret_examples = ("password=hunter2hunter2",)

    @pytest.fixture
    def connection(self, db: Any, server: SftpSandbox) -> Connection:
        return connect(server)

    @pytest.fixture
    def simulator(self, server: SftpSandbox) -> SftpSandbox:
        return server

    def break_credentials(self, connection: Connection) -> str:
        connection.credentials = {"password": "wrong-password-123"}
        connection.save()
        return "wrong-password-123"

    def make_unreachable(self, connection: Connection) -> None:
        connection.settings = {**connection.settings, "port": 9}
        connection.save()


def test_only_complete_files_are_taken(db: Any, server: SftpSandbox) -> None:
    stampli = client_for(connect(server))
    assert [f.name for f in stampli.complete_files("invoices")] == ["invoices_20261101.csv"]
    (server.root / "outbound" / "invoices_20261102.csv.done").write_text("")
    names = [f.name for f in stampli.complete_files("invoices")]
    assert names == ["invoices_20261101.csv", "invoices_20261102.csv"]  # the marker says done


def test_an_export_is_read_with_its_checksum(db: Any, server: SftpSandbox) -> None:
    stampli = client_for(connect(server))
    (file,) = stampli.complete_files("invoices")
    export = stampli.read_export("invoices", file)
    assert len(export.sha256) == 64 and export.parsed.rows[0].values["invoice_id"] == "ST-1"
    (payments,) = stampli.complete_files("payments")
    cut = stampli.read_export("payments", payments)  # one byte, no line break: may be cut
    assert "header row" in cut.parsed.incomplete and not cut.parsed.rows
    (server.root / "outbound" / payments.name).write_bytes(b"not,a,payment\n1,2,3\n")
    (payments,) = stampli.complete_files("payments", now=time.time() + 3600)
    refused = stampli.read_export("payments", payments)  # told, not raised: nothing of it used
    assert "This is not a Stampli payments" in refused.unreadable and not refused.parsed.rows
    assert len(refused.sha256) == 64  # so it is skipped until it changes


def test_processed_files_are_archived_only_when_allowed(db: Any, server: SftpSandbox) -> None:
    stampli = client_for(connect(server))
    (file,) = stampli.complete_files("invoices")
    assert stampli.archive(file) is None and (server.root / "outbound" / file.name).exists()
    allowed = client_for(connect_again(server, archive_files="yes"))
    assert allowed.archive(file) == f"/archive/{file.name}"
    assert (server.root / "archive" / file.name).exists()


def connect_again(server: SftpSandbox, **settings: Any) -> Connection:
    Connection.objects.filter(slug="stampli").delete()
    return connect(server, **settings)


@pytest.mark.parametrize(
    ("template", "error"),
    [
        ('{"delimiter": ";;"}', "one character"),
        ('{"files": {"receipts": {}}}', "not a kind"),
        ('{"files": {"invoices": {"columns": {"colour": "Colour"}}}}', "no field"),
        ('{"decimal": ",", "thousands": ","}', "must differ"),
        ('{"encoding": "klingon"}', "not an encoding"),
        ("[1, 2]", "JSON object"),
    ],
)
def test_a_bad_template_is_a_form_error(
    db: Any, server: SftpSandbox, template: str, error: str
) -> None:
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match=error):
        connect(server, csv_template=template)
