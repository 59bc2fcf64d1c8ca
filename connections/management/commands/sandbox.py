"""``manage.py sandbox``: serve the M3 and Stripe simulators on loopback until interrupted."""

from __future__ import annotations

import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from connections.sandbox.server import start_sandbox

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Serve the sandbox simulators (Infor M3 ION API, Stripe) for the demo and manual tests."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--m3-port", type=int, default=8101)
        parser.add_argument("--stripe-port", type=int, default=8102)
        parser.add_argument("--seed", action="store_true", help="Seed a demo CloudSuite tenant.")
        parser.add_argument("--seed-invoices", type=int, default=24)
        parser.add_argument("--seed-customers", type=int, default=10)
        parser.add_argument(
            "--rate-limit",
            type=int,
            default=0,
            metavar="PER_MINUTE",
            help="Per-client rate limit of both simulators (0: none).",
        )
        parser.add_argument(
            "--autopay",
            type=float,
            default=0,
            metavar="SECONDS",
            help="Every SECONDS, Stripe customers pay some open invoices.",
        )
        parser.add_argument(
            "--state-dir",
            default=str(Path(settings.VAR_DIR) / "sandbox"),
            help="Where simulator state is kept between runs ('' for none).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        state_dir = Path(options["state_dir"]) if options["state_dir"] else None
        sandbox = start_sandbox(
            host=options["host"],
            m3_port=options["m3_port"],
            stripe_port=options["stripe_port"],
            state_dir=state_dir,
            seed=options["seed"],
            autopay_seconds=options["autopay"],
            seed_invoices=options["seed_invoices"],
            seed_customers=options["seed_customers"],
        )
        for sim in sandbox.simulators.values():
            sim.rate_limit.per_minute = options["rate_limit"] or None
        self.stdout.write(
            f"Sandbox up: Infor M3 ION API {sandbox.m3.url} (GET /_sandbox/ionapi for the "
            f".ionapi file), Stripe {sandbox.stripe.url} (key {sandbox.stripe.app.api_key})."
        )
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
