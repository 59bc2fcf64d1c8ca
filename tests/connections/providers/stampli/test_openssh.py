"""The Stampli provider against OpenSSH's own sshd (Debian's openssh-server), started here on a
loopback port: the server Stampli-like hosts really run, not only our asyncssh sandbox."""

from __future__ import annotations

import getpass
import io
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest

from connections.models import Connection
from connections.providers.errors import AuthFailed
from connections.providers.registry import client_for

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
pytestmark = pytest.mark.skipif(
    not (os.path.exists(SSHD) and shutil.which("ssh-keygen")),
    reason="needs OpenSSH's sshd (Debian openssh-server; .ci/run installs it)",
)
EXPORT = (
    "\ufeffInvoice ID,Vendor ID,Vendor Name,Invoice Number,Invoice Date,Due Date,Currency,"
    'Total Amount\r\nST-9,V-1,Nord AB,N-9,2026-11-01,,SEK,"2,500.00"\r\n'
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[dict[str, Any]]:
    keys = tmp_path / "keys"
    keys.mkdir()
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / "host")], check=True
    )
    client = paramiko.RSAKey.generate(2048)
    (keys / "authorized_keys").write_text(f"{client.get_name()} {client.get_base64()}\n")
    root = tmp_path / "exports"
    (root / "outbound").mkdir(parents=True)
    (root / "outbound" / "invoices_1.csv").write_text(EXPORT)
    old = time.time() - 3600
    os.utime(root / "outbound" / "invoices_1.csv", (old, old))
    port = free_port()
    config = tmp_path / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {keys / 'host'}",
                f"PidFile {tmp_path / 'sshd.pid'}",
                f"AuthorizedKeysFile {keys / 'authorized_keys'}",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                "StrictModes no",
                "PermitRootLogin prohibit-password",
                f"Subsystem sftp internal-sftp -d {root}",
                "LogLevel ERROR",
                "",
            ]
        )
    )
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # privilege separation directory
    process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if process.poll() is not None:
                pytest.fail(f"sshd did not start: {process.stderr.read().decode()[:500]}")  # type: ignore[union-attr]
            time.sleep(0.1)
    out = io.StringIO()
    client.write_private_key(out)
    yield {
        "port": port,
        "root": root,
        "host_key": (keys / "host.pub").read_text().strip(),
        "private_key": out.getvalue(),
    }
    process.terminate()
    process.wait(timeout=10)


def connect(sshd: dict[str, Any], **settings: Any) -> Connection:
    conn = Connection(
        name="Stampli on OpenSSH",
        slug="stampli-openssh",
        kind="stampli",
        credentials={"private_key": sshd["private_key"]},
        settings={
            "host": "127.0.0.1",
            "port": sshd["port"],
            "username": getpass.getuser(),
            "host_key": sshd["host_key"],
            "remote_dir": f"{sshd['root']}/outbound",
            "archive_dir": f"{sshd['root']}/archive",
            "archive_files": "yes",
            "connect_timeout": 5,
            "max_attempts": 2,
            **settings,
        },
    )
    conn.full_clean()
    conn.save()
    return conn


def test_the_provider_reads_and_archives_over_openssh(db: Any, sshd: dict[str, Any]) -> None:
    stampli = client_for(connect(sshd))
    assert stampli.check().ok
    (file,) = stampli.complete_files("invoices")
    export = stampli.read_export("invoices", file)
    assert export.parsed.rows[0].values["invoice_id"] == "ST-9" and not export.parsed.errors
    assert stampli.archive(file) == f"{sshd['root']}/archive/invoices_1.csv"
    assert (sshd["root"] / "archive" / "invoices_1.csv").exists()
    stampli.close()


def test_openssh_with_another_host_key_is_refused(db: Any, sshd: dict[str, Any]) -> None:
    other = paramiko.RSAKey.generate(2048)
    conn = connect(sshd, host_key=f"{other.get_name()} {other.get_base64()}")
    with pytest.raises(AuthFailed, match="presented the host key ssh-ed25519"):
        client_for(conn).complete_files("invoices")
