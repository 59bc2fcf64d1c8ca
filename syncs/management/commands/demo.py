"""``manage.py demo``: everything a new user needs, in one command.

Migrates, collects static files, creates the admin and Finance reviewer logins (the password
kept in ``var/``), starts the six sandbox simulators (a seeded CloudSuite tenant, a Stripe
account whose customers pay now and then, IFS Cloud, Wise, Cin7 Core and Stampli's SFTP export
folder), creates the demo's connections and integrations, starts a django-q2 worker cluster and
the web server, prints the admin URL, the logins and every simulator's address, and stops
everything on Ctrl-C.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from connections.sandbox.server import SIMULATORS
from connections.sandbox.stampli import SFTP_PORT_VARIABLE
from syncs.demo import demo_seed

logger = logging.getLogger(__name__)

USERNAME = "admin"
REVIEWER = "reviewer"
# Ctrl-C should be prompt in a demo: its runs are short, and one still going when the grace is
# over is closed as interrupted and read again next time (production keeps WORKER_STOP_SECONDS).
DEMO_GRACE = 5
# Each simulator's port: its default, or DEMO_<NAME>_PORT (DEMO_M3_PORT, DEMO_STRIPE_PORT …).
PORTS = {
    name: int(os.environ.get(f"DEMO_{name.upper()}_PORT", cls.default_port))
    for name, cls in SIMULATORS.items()
}
SFTP_PORT = int(os.environ.get("DEMO_STAMPLI_SFTP_PORT", "8107"))  # Stampli's export folder
DEMO_STORY = (
    "  First data in about a minute: Stripe customers and invoices from the CloudSuite\n"
    "  tenant, then receipts in CloudSuite as the sandbox's customers pay; IFS Cloud\n"
    "  customers and draft invoices in Stripe; CloudSuite suppliers as Wise recipients and\n"
    "  quotes, then payment journals as the sandbox's Wise user pays them; Stampli's\n"
    "  exports as CloudSuite AP invoices; CloudSuite suppliers and orders in Cin7 Core.\n"
    "  Log in as the Finance reviewer to see what a finance user sees.\n"
    "  Ctrl-C stops the server, worker and sandbox.\n"
)


def sandbox_lines(urls: dict[str, str]) -> str:
    """One line per simulator: what it is and where (Stampli's files: their SFTP address)."""
    lines = [f"  Sandbox ({len(urls)} simulators, state kept in var/sandbox/):"]
    for name, url in urls.items():
        label = SIMULATORS[name].label
        where = f"sftp://sandbox@127.0.0.1:{SFTP_PORT}/outbound" if name == "stampli" else url
        lines.append(f"    {label}: {where}")
    return "\n".join(lines) + "\n"


def demo_admin_password() -> str:
    """The demo admin's password: generated once into var/, the same on every start."""
    path = Path(settings.VAR_DIR) / "demo-admin-password"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(12))
    return path.read_text().strip()


class Command(BaseCommand):
    help = "Set up and serve the demo: admin login, django-q2 worker and web server."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default=os.environ.get("DEMO_HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("DEMO_PORT", "8000")))
        parser.add_argument(
            "--setup-only",
            action="store_true",
            help="Prepare everything and print the login, but serve nothing.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        password = demo_admin_password()
        user, _ = get_user_model().objects.get_or_create(username=USERNAME)
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        # A finance user's own login: the Finance reviewer group's grants, nothing more.
        reviewer, _ = get_user_model().objects.get_or_create(username=REVIEWER)
        reviewer.is_staff, reviewer.is_superuser = True, False
        reviewer.set_password(password)
        reviewer.save()
        reviewer.groups.set(Group.objects.filter(name="Finance reviewer"))
        url = f"http://{options['host']}:{options['port']}/admin/"
        banner = (
            f"\n  ml-connector demo\n  Admin:  {url}\n  Login:  {USERNAME} / {password}\n"
            f"  Finance reviewer: {REVIEWER} / {password}\n"
        )
        if options["setup_only"]:
            self.stdout.write(banner)
            return
        manage = str(Path(settings.BASE_DIR) / "manage.py")
        sandbox = {name: f"http://127.0.0.1:{port}" for name, port in PORTS.items()}
        children: list[subprocess.Popen] = []
        # Stop cleanly under kill, and when the terminal goes away (its window closed): the
        # sandbox and worker run in sessions of their own and would otherwise live on.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        signal.signal(signal.SIGHUP, lambda *_: sys.exit(0))
        try:
            ports = [f"--port={name}={port}" for name, port in PORTS.items()]
            os.environ[SFTP_PORT_VARIABLE] = str(SFTP_PORT)  # for the sandbox's SFTP server
            children.append(self._spawn([manage, "sandbox", "--seed", "--activity", "20", *ports]))
            for url in sandbox.values():
                self._wait_for(url + "/_sandbox/state", children[0])
            demo_seed(urls=sandbox, web_url=f"http://{options['host']}:{options['port']}")
            call_command("sync_schedules", verbosity=0)
            children.append(self._spawn([manage, "worker", "--grace", str(DEMO_GRACE)]))
            self.stdout.write(banner + sandbox_lines(sandbox) + DEMO_STORY)
            call_command(
                "runserver",
                f"{options['host']}:{options['port']}",
                use_reloader=False,
                use_threading=True,
            )
        finally:
            # Nothing interrupts the clean-up: a terminal that goes away signals more than once.
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, signal.SIG_IGN)
            # The worker first (its runs may still call the sandbox), then the sandbox; each
            # stops its own children, the worker within its grace period.
            patience = DEMO_GRACE + 20
            for child in reversed(children):
                child.send_signal(signal.SIGTERM)
                try:
                    child.wait(timeout=patience)
                except subprocess.TimeoutExpired:
                    os.killpg(child.pid, signal.SIGKILL)

    @staticmethod
    def _spawn(argv: list[str]) -> subprocess.Popen:
        return subprocess.Popen(  # noqa: S603  (this Python, this manage.py)
            [sys.executable, *argv], start_new_session=True
        )

    @staticmethod
    def _wait_for(url: str, child: subprocess.Popen, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if child.poll() is not None:
                raise CommandError("The sandbox did not start (see the lines above).")
            try:
                requests.get(url, timeout=1)
                return
            except requests.RequestException:
                time.sleep(0.2)
        raise CommandError(f"The sandbox did not answer at {url}.")
