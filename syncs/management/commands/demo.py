"""``manage.py demo``: everything a new user needs, in one command.

Migrates, collects static files, creates the admin login (kept in ``var/``), keeps schedules in
step, starts a django-q2 worker cluster and the web server, prints the admin URL and login, and
stops the worker when the server stops (Ctrl-C).
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

logger = logging.getLogger(__name__)

USERNAME = "admin"


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
        call_command("sync_schedules", verbosity=0)
        url = f"http://{options['host']}:{options['port']}/admin/"
        banner = f"\n  ml-connector demo\n  Admin:  {url}\n  Login:  {USERNAME} / {password}\n"
        if options["setup_only"]:
            self.stdout.write(banner)
            return
        manage = str(Path(settings.BASE_DIR) / "manage.py")
        worker = subprocess.Popen(  # noqa: S603  (a fixed argv: this Python, this manage.py)
            [sys.executable, manage, "qcluster"], start_new_session=True
        )
        self.stdout.write(banner + "  (Ctrl-C stops the web server and the worker)\n")
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop cleanly under kill, too
        try:
            call_command(
                "runserver",
                f"{options['host']}:{options['port']}",
                use_reloader=False,
                use_threading=True,
            )
        finally:
            worker.send_signal(signal.SIGTERM)  # the cluster stops its own children
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
