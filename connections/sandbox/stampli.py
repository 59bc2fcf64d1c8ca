"""A Stampli customer's SFTP export folder: a real SFTP server (``sftp.SftpSandbox``) that
Stampli's side fills with CSV exports as Stampli does — approved invoices with their lines,
payments, and the vendors list — in the layout of the connector's default template (Stampli
publishes none: it is agreed per customer), written as real exports are (BOM, CRLF, quoted
fields with commas, thousands separators) and marked complete with a ``NAME.done`` file.

Its HTTP side is only the sandbox's controls: ``/_sandbox/state``, ``/_sandbox/connection`` (how
to connect) and ``/_sandbox/export`` (drop an export now).  Its users export a batch now and then
(``activity``), including, once, an invoice of a vendor CloudSuite does not know, and pay what
they exported earlier.
"""

from __future__ import annotations

import logging
import os
import random
import tempfile
from pathlib import Path
from typing import Any

import asyncssh
from werkzeug.wrappers import Request, Response

from connections.sandbox.base import Simulator, json_response
from connections.sandbox.sftp import SftpSandbox

logger = logging.getLogger(__name__)

# Stampli vendor → (name, external id: the CloudSuite supplier, currency, GL code of its lines)
VENDORS = {
    "V-2001": ("Kaffeerösterei Nord GmbH", "S2001", "EUR", "6000"),
    "V-2002": ("Atelier Lumière SARL", "S2002", "EUR", "6000"),
    "V-2003": ("Noord Verpakking BV", "S2003", "EUR", "6500"),
    "V-2004": ("Skärgårds Frakt AB", "S2004", "SEK", "6000"),
    "V-9001": ("Harbour Café, Ltd", "", "EUR", "6000"),  # not a CloudSuite supplier
}
INVOICE_HEAD = (
    "Invoice ID,Vendor ID,Vendor Name,Invoice Number,Invoice Date,Due Date,Currency,"
    "Total Amount,Tax Amount,Status"
)
LINES_HEAD = "Invoice ID,Line Number,Description,Amount,GL Account,Cost Center"
PAYMENTS_HEAD = "Payment ID,Vendor ID,Invoice Number,Payment Date,Amount,Currency,Payment Method"
VENDORS_HEAD = "Vendor ID,Vendor Name,External ID,Tax ID"


def _quote(value: str) -> str:
    return f'"{value}"' if any(c in value for c in ',"\r\n') else value


def _csv(head: str, rows: list[list[str]]) -> bytes:
    lines = [head] + [",".join(_quote(v) for v in row) for row in rows]
    return ("\ufeff" + "\r\n".join(lines) + "\r\n").encode("utf-8")


def _money(amount: int) -> str:
    """Cents as Stampli writes them: ``1,234.50``."""
    return f"{amount // 100:,}.{amount % 100:02d}"


SFTP_PORT_VARIABLE = "SANDBOX_STAMPLI_SFTP_PORT"


class StampliSimulator(Simulator):
    """Stampli's side of an SFTP export folder."""

    name = "stampli"
    kind = "stampli"
    label = "Stampli (SFTP)"
    default_port = 8105  # its control port (/_sandbox/…); the files are served over SFTP

    def __init__(self, *, root: Path | None = None, sftp_port: int | None = None) -> None:
        super().__init__()
        self.root = Path(root or tempfile.mkdtemp(prefix="stampli-sftp-"))
        (self.root / "outbound").mkdir(parents=True, exist_ok=True)
        if sftp_port is None:  # the demo names its port; elsewhere any free one
            sftp_port = int(os.environ.get(SFTP_PORT_VARIABLE) or 0)
        self.sftp = SftpSandbox(self.root, port=sftp_port)
        self.sequence = 0
        self.exported: list[dict[str, Any]] = []  # invoices exported, for payments later
        self.unknown_vendor_sent = False

    # -- server -----------------------------------------------------------------------------

    def started(self) -> None:
        self.sftp.start()

    def stopped(self) -> None:
        self.sftp.stop()

    def handle(self, request: Request) -> Response:
        return json_response({"error": "Stampli has no API: it exports to SFTP"}, 404)

    def control_action(self, request: Request) -> Response:
        if request.path == "/_sandbox/export":
            return json_response({"files": self.export_batch(random.Random(), invoices=3)})
        return super().control_action(request)

    # -- exports ----------------------------------------------------------------------------

    def write(self, name: str, content: bytes) -> None:
        """Write an export and then its done marker (a reader never sees half of it)."""
        path = self.root / "outbound" / name
        path.write_bytes(content)
        (self.root / "outbound" / f"{name}.done").write_bytes(b"")

    def export_vendors(self) -> None:
        rows = [[vid, name, ext, ""] for vid, (name, ext, _, _) in VENDORS.items()]
        self.write("vendors_all.csv", _csv(VENDORS_HEAD, rows))

    def export_batch(self, rng: random.Random, *, invoices: int = 2) -> list[str]:
        """An export of approved invoices with their lines; now and then their payments."""
        with self.lock:
            self.sequence += 1
            seq = self.sequence
            heads, lines = [], []
            known = [v for v, (_, ext, _, _) in VENDORS.items() if ext]
            for n in range(invoices):
                vendor = rng.choice(known)
                if not self.unknown_vendor_sent and n == invoices - 1:
                    vendor, self.unknown_vendor_sent = "V-9001", True
                name, _, currency, gl = VENDORS[vendor]
                net = rng.randrange(5000, 300000)
                tax = net // 4
                number = f"INV-{seq:04d}-{n + 1}"
                invoice_id = f"ST-{seq:04d}{n + 1}"
                day = f"2026-11-{(seq % 27) + 1:02d}"
                heads.append(
                    [
                        invoice_id,
                        vendor,
                        name,
                        number,
                        day,
                        "",
                        currency,
                        _money(net + tax),
                        _money(tax),
                        "Approved",
                    ]
                )
                half = net // 2
                lines.append([invoice_id, "1", "Goods", _money(half), gl, ""])
                lines.append([invoice_id, "2", "Services, delivery", _money(net - half), gl, ""])
                self.exported.append(
                    {"vendor": vendor, "number": number, "amount": net + tax, "currency": currency}
                )
            files = [f"invoice_lines_{seq:04d}.csv", f"invoices_{seq:04d}.csv"]
            self.write(files[0], _csv(LINES_HEAD, lines))
            self.write(files[1], _csv(INVOICE_HEAD, heads))
            payable = [e for e in self.exported[:-invoices] if "paid" not in e]
            if payable and rng.random() < 0.5:
                paid = payable[0]
                paid["paid"] = True
                self.write(
                    f"payments_{seq:04d}.csv",
                    _csv(
                        PAYMENTS_HEAD,
                        [
                            [
                                f"PAY-{seq:04d}",
                                paid["vendor"],
                                paid["number"],
                                "2026-11-30",
                                _money(paid["amount"]),
                                paid["currency"],
                                "ACH",
                            ]
                        ],
                    ),
                )
                files.append(f"payments_{seq:04d}.csv")
            return files

    # -- the sandbox's life -----------------------------------------------------------------

    def seed(self, **options: Any) -> None:
        with self.lock:
            if self.sequence:
                return
        self.export_vendors()
        self.export_batch(random.Random(3), invoices=3)

    def activity(self, rng: Any) -> str:
        if rng.random() < 0.3:
            return "exported " + ", ".join(self.export_batch(rng))
        return ""

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            files = {
                str(p.relative_to(self.root)): p.read_bytes()
                for p in self.root.rglob("*")
                if p.is_file()
            }
            return {
                "files": files,
                "sequence": self.sequence,
                "exported": self.exported,
                "unknown_vendor_sent": self.unknown_vendor_sent,
                "host_key": self.sftp.host_key.export_private_key().decode(),
                "users": self.sftp.users,
            }

    def restore(self, snapshot: dict[str, Any]) -> None:
        with self.lock:
            for name, content in snapshot.get("files", {}).items():
                path = self.root / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(content)
            self.sequence = snapshot.get("sequence", 0)
            self.exported = snapshot.get("exported", [])
            self.unknown_vendor_sent = snapshot.get("unknown_vendor_sent", False)
            if snapshot.get("host_key"):
                self.sftp.host_key = asyncssh.import_private_key(snapshot["host_key"])
            self.sftp.users = snapshot.get("users", self.sftp.users)

    def state_summary(self) -> dict[str, Any]:
        outbound = self.root / "outbound"
        return {
            **super().state_summary(),
            "exports": self.sequence,
            "files_waiting": sum(1 for p in outbound.iterdir() if p.suffix == ".csv"),
            "sftp_port": self.sftp.port,
        }

    def address(self, url: str) -> str:
        """The export folder, over SFTP (its HTTP port only takes the sandbox's controls)."""
        return f"sftp://sandbox@{self.sftp.host}:{self.sftp.port}/outbound"

    def connection_values(self, url: str) -> dict[str, Any]:
        return {
            "kind": "stampli",
            "credentials": {"password": self.sftp.users["sandbox"]},
            "settings": {
                "host": self.sftp.host,
                "port": self.sftp.port,
                "username": "sandbox",
                "host_key": self.sftp.host_key_line,
                "remote_dir": "/outbound",
                "archive_files": True,
                "archive_dir": "/archive",
                "settle_seconds": 5,
            },
        }
