"""``manage.py sandbox``: serve every simulator on loopback until interrupted."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from connections.sandbox.server import SIMULATORS, start_sandbox

logger = logging.getLogger(__name__)


def _port(value: str) -> tuple[str, int]:
    name, sep, port = value.partition("=")
    if not sep or name not in SIMULATORS or not port.isdigit():
        raise argparse.ArgumentTypeError(
            f"write NAME=PORT with NAME one of {', '.join(SIMULATORS)}"
        )
    return name, int(port)


class Command(BaseCommand):
    help = "Serve the sandbox simulators (" + ", ".join(SIMULATORS) + ") for the demo and tests."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument(
            "--port",
            type=_port,
            action="append",
            default=[],
            metavar="NAME=PORT",
            help="Serve a simulator on another port (defaults: "
            + ", ".join(f"{n}={c.default_port}" for n, c in SIMULATORS.items())
            + ").",
        )
        parser.add_argument("--seed", action="store_true", help="Seed demo data.")
        parser.add_argument("--seed-invoices", type=int, default=24)
        parser.add_argument("--seed-customers", type=int, default=10)
        parser.add_argument(
            "--rate-limit",
            type=int,
            default=0,
            metavar="PER_MINUTE",
            help="Per-client rate limit of every simulator (0: none).",
        )
        parser.add_argument(
            "--activity",
            type=float,
            default=0,
            metavar="SECONDS",
            help="Every SECONDS, the simulated users act (Stripe customers pay invoices).",
        )
        parser.add_argument(
            "--state-dir",
            default=str(Path(settings.VAR_DIR) / "sandbox"),
            help="Where simulator state is kept between runs ('' for none).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        state_dir = Path(options["state_dir"]) if options["state_dir"] else None
        ports = {name: cls.default_port for name, cls in SIMULATORS.items()}
        ports.update(dict(options["port"]))
        sandbox = start_sandbox(
            host=options["host"],
            ports=ports,
            state_dir=state_dir,
            seed=options["seed"],
            seed_options={
                "invoices": options["seed_invoices"],
                "customers": options["seed_customers"],
            },
            activity_seconds=options["activity"],
        )
        for sim in sandbox.simulators.values():
            sim.rate_limit.per_minute = options["rate_limit"] or None
        lines = [
            f"  {sim.label}: {sim.address(sandbox[n].url)}" for n, sim in sandbox.simulators.items()
        ]
        self.stdout.write("Sandbox up:\n" + "\n".join(lines))
        self.stdout.flush()
        stop = {"now": False}

        def on_signal(*_: Any) -> None:
            stop["now"] = True

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        try:
            while not stop["now"]:
                time.sleep(0.2)
        finally:
            sandbox.stop()
            sys.stdout.write("Sandbox stopped; state saved.\n")
