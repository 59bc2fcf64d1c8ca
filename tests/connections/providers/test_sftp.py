"""The SFTP provider base (paramiko) against a real SFTP server (asyncssh) on loopback: the
provider contract, key and password logins, host-key pinning, files, and its error family."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncssh
import paramiko
import pytest
from django.core.exceptions import ValidationError

from connections import systems
from connections.models import Connection
from connections.providers.errors import AuthFailed, NotFound, Rejected, Transient
from connections.providers.registry import client_for
from connections.providers.sftp import SftpProvider, fingerprint, sftp_spec
from connections.sandbox.sftp import SftpSandbox
from tests.connections.providers.contract import ProviderContract


class FilesProvider(SftpProvider):
    """A system that is only a folder on SFTP (what Stampli will be)."""

    kind = "test_sftp"
    label = "Test files"
    spec = sftp_spec()


@pytest.fixture(autouse=True)
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(systems.SYSTEMS, FilesProvider.kind, FilesProvider)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SftpSandbox]:
    (tmp_path / "root" / "outbound").mkdir(parents=True)
    (tmp_path / "root" / "outbound" / "invoices-1.csv").write_text("id;amount\n1;10.00\n")
    (tmp_path / "root" / "outbound" / "payments-1.csv").write_text("id;amount\n")
    (tmp_path / "root" / "outbound" / "subfolder").mkdir()
    served = SftpSandbox(tmp_path / "root").start()
    yield served
    served.stop()


def sftp_connection(server: SftpSandbox, **credentials: str) -> Connection:
    conn = Connection(
        name="Files",
        slug="files",
        kind=FilesProvider.kind,
        credentials=credentials or {"password": server.users["sandbox"]},
        settings={
            "host": server.host,
            "port": server.port,
            "username": "sandbox",
            "host_key": server.host_key_line,
            "connect_timeout": 5,
            "max_attempts": 2,
        },
    )
    conn.full_clean()
    conn.save()
    return conn


class TestSftpContract(ProviderContract):
    provider = FilesProvider
    secret_examples = (
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n"
        "-----END OPENSSH PRIVATE KEY-----",
        "password=hunter2hunter2",
    )

    @pytest.fixture
    def connection(self, db: Any, server: SftpSandbox) -> Connection:
        return sftp_connection(server)

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


def test_check_lists_the_folder(db: Any, server: SftpSandbox, sleeps: list[float]) -> None:
    result = client_for(sftp_connection(server), sleep=sleeps.append).check()
    assert result.ok and "2 file(s) in /outbound" in result.message


def test_key_login_lists_reads_and_archives(db: Any, server: SftpSandbox) -> None:
    key = asyncssh.generate_private_key("ssh-ed25519")
    server.authorize(key)
    pem = key.export_private_key("openssh").decode()
    client = client_for(sftp_connection(server, private_key=pem))
    try:
        files = client.list_files()
        assert [f.name for f in files] == ["invoices-1.csv", "payments-1.csv"]  # no folders
        assert files[0].size == len("id;amount\n1;10.00\n")
        assert client.read_file(files[0].path) == b"id;amount\n1;10.00\n"
        moved = client.move_file(files[0].path, "/archive")
        assert moved == "/archive/invoices-1.csv"
        assert (server.root / "archive" / "invoices-1.csv").exists()
        assert [f.name for f in client.list_files()] == ["payments-1.csv"]
    finally:
        client.close()


def test_a_passphrase_protected_key_needs_its_passphrase(db: Any, server: SftpSandbox) -> None:
    key = asyncssh.generate_private_key("ssh-ed25519")
    server.authorize(key)
    pem = key.export_private_key("openssh", passphrase="open sesame").decode()
    locked = client_for(sftp_connection(server, private_key=pem))
    with pytest.raises(AuthFailed, match="passphrase"):
        locked.list_files()
    unlocked = client_for(
        sftp_connection_update(server, private_key=pem, private_key_passphrase="open sesame")
    )
    assert len(unlocked.list_files()) == 2
    unlocked.close()


def sftp_connection_update(server: SftpSandbox, **credentials: str) -> Connection:
    conn = Connection.objects.get(slug="files")
    conn.credentials = credentials
    conn.save()
    return conn


def test_a_server_with_another_host_key_is_refused(db: Any, server: SftpSandbox) -> None:
    conn = sftp_connection(server)
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    conn.settings["host_key"] = f"[{server.host}]:{server.port} {other}"
    conn.save()
    result = client_for(conn).check()
    assert not result.ok
    assert "not the configured one" in result.message
    presented = paramiko.PKey.from_type_string(
        "ssh-ed25519", base64.b64decode(server.host_key_line.split()[1])
    )
    assert fingerprint(presented) in result.message  # what it did present, as ssh-keygen -l


def test_on_first_use_the_presented_key_is_shown_then_trusted(
    db: Any, server: SftpSandbox, admin_client: Any
) -> None:
    conn = sftp_connection(server)
    conn.settings.pop("host_key")
    conn.save()
    result = client_for(conn).check()
    line, shown = client_for(conn).presented_host_key()
    assert not result.ok and shown in result.message and "not trusted yet" in result.message
    assert line == server.host_key_line
    url = "/admin/connections/connection/"
    ask = admin_client.post(url, {"action": "trust_host_key", "_selected_action": [conn.pk]})
    assert shown in ask.content.decode() and "Confirm" in ask.content.decode()
    conn.refresh_from_db()
    assert not conn.settings.get("host_key")  # nothing trusted before it is confirmed
    wrong = admin_client.post(
        url,
        {
            "action": "trust_host_key",
            "_selected_action": [conn.pk],
            "confirmed": "yes",
            "fingerprint": "SHA256:not-what-it-presents",
        },
        follow=True,
    )
    assert "not the one you confirmed" in wrong.content.decode()
    conn.refresh_from_db()
    assert not conn.settings.get("host_key")
    admin_client.post(
        url,
        {
            "action": "trust_host_key",
            "_selected_action": [conn.pk],
            "confirmed": "yes",
            "fingerprint": shown,
        },
    )
    conn.refresh_from_db()
    assert conn.settings["host_key"] == server.host_key_line
    assert client_for(conn).check().ok


def test_trusting_a_servers_key_applies_to_every_connection_to_that_server(
    db: Any, server: SftpSandbox
) -> None:
    from connections.forms import connection_form_for
    from connections.services import sftp_host_key_trust

    conns = []
    for n in range(3):
        conn = sftp_connection(server) if n == 0 else Connection.objects.get(slug="files")
        if n:
            conn.pk, conn.slug, conn.name = None, f"files-{n}", f"Files {n}"
        conn.settings = {**conn.settings, "host_key": ""}
        conn.save()
        conns.append(conn)
    elsewhere = Connection.objects.create(
        name="Other server",
        slug="other",
        kind=FilesProvider.kind,
        credentials={"password": "x"},
        settings={**conns[0].settings, "port": server.port + 1},
    )
    _, shown = client_for(conns[0]).presented_host_key()
    told = sftp_host_key_trust(connection=conns[0], fingerprint=shown)
    assert "2 other connection(s) to this server" in told
    for conn in conns:
        conn.refresh_from_db()
        assert conn.settings["host_key"] == server.host_key_line
        assert client_for(conn).check().ok
    elsewhere.refresh_from_db()
    assert not elsewhere.settings["host_key"]  # another port is another server

    # a connection added later to the same server starts out trusting the key already trusted
    form_class = connection_form_for(FilesProvider.kind)
    data = {"name": "Files 4", "slug": "files-4", "cred__password": "pw"}
    data.update({f"setting__{k}": v for k, v in conns[0].settings.items()})
    data["setting__host_key"] = ""
    form = form_class(data=data)
    assert form.is_valid(), form.errors
    assert form.instance.settings["host_key"] == server.host_key_line


def test_refused_logins_and_dropped_connections_map_onto_the_error_family(
    db: Any, server: SftpSandbox, sleeps: list[float]
) -> None:
    client = client_for(sftp_connection(server), sleep=sleeps.append)
    server.refuse_logins = True
    with pytest.raises(AuthFailed, match="refused the username, password or key"):
        client.list_files()
    server.refuse_logins = False
    server.drop_connections = True
    before = server.connections
    with pytest.raises(Transient):
        client.list_files()
    assert server.connections - before == 2 and len(sleeps) == 1  # max_attempts=2, one backoff


def test_missing_files_and_oversized_files(db: Any, server: SftpSandbox) -> None:
    client = client_for(sftp_connection(server))
    try:
        with pytest.raises(NotFound):
            client.read_file("/outbound/nope.csv")
        with pytest.raises(NotFound):
            client.list_files("/no-such-folder")
        with pytest.raises(Rejected, match="over the 4-byte limit"):
            client.read_file("/outbound/invoices-1.csv", max_bytes=4)
    finally:
        client.close()


def test_the_spec_wants_a_password_or_a_key_and_a_readable_host_key(db: Any) -> None:
    spec = FilesProvider.spec
    with pytest.raises(ValidationError, match="either a password or a private key"):
        spec.clean_credentials({})
    settings = {"host": "h", "username": "u", "host_key": "not a key"}
    with pytest.raises(ValidationError, match="not a public key"):
        spec.clean_settings(settings)


def test_a_private_key_is_never_echoed_back_even_on_a_form_error(admin_client: Any) -> None:
    key = asyncssh.generate_private_key("ssh-ed25519").export_private_key("openssh").decode()
    answer = admin_client.post(
        f"/admin/connections/connection/add/?kind={FilesProvider.kind}",
        {
            "name": "Files",
            "slug": "files",
            "kind": FilesProvider.kind,
            "cred__private_key": key,
            "cred__private_key_passphrase": "secret-passphrase-1",
            "setting__host": "sftp.example.com",
            "setting__username": "u",
            "setting__host_key": "not a key",  # the error that sends the form back
        },
    )
    page = answer.content.decode()
    assert answer.status_code == 200 and "not a public key" in page
    body = "".join(key.splitlines()[1:-1])
    assert body[:40] not in page and "secret-passphrase-1" not in page
    assert not Connection.objects.filter(slug="files").exists()
