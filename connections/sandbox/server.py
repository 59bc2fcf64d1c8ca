"""Serves the simulators together, keeps their state across restarts, plays paying customers."""

from __future__ import annotations

import logging
import pickle
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from connections.sandbox.base import Served, Simulator
from connections.sandbox.m3 import M3Simulator
from connections.sandbox.seed import seed_tenant
from connections.sandbox.stripe import StripeSimulator

logger = logging.getLogger(__name__)


@dataclass
class Sandbox:
    m3: Served
    stripe: Served
    state_dir: Path | None = None
    stop_event: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    @property
    def simulators(self) -> dict[str, Simulator]:
        return {"m3": self.m3.app, "stripe": self.stripe.app}

    def save(self) -> None:
        if self.state_dir is None:
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for name, sim in self.simulators.items():
            path = self.state_dir / f"{name}.pickle"
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(pickle.dumps(sim.snapshot()))  # type: ignore[attr-defined]
            tmp.replace(path)

    def load(self) -> None:
        if self.state_dir is None:
            return
        for name, sim in self.simulators.items():
            path = self.state_dir / f"{name}.pickle"
            if path.exists():
                sim.restore(pickle.loads(path.read_bytes()))  # type: ignore[attr-defined]  # noqa: S301  (our own file)

    def every(self, seconds: float, action: Callable[[], object], name: str) -> None:
        def loop() -> None:
            while not self.stop_event.wait(seconds):
                try:
                    action()
                except Exception:
                    logger.exception("sandbox %s failed", name)

        thread = threading.Thread(target=loop, daemon=True, name=f"sandbox-{name}")
        thread.start()
        self.threads.append(thread)

    def stop(self) -> None:
        self.stop_event.set()
        self.save()
        self.m3.stop()
        self.stripe.stop()


def start_sandbox(
    *,
    host: str = "127.0.0.1",
    m3_port: int = 0,
    stripe_port: int = 0,
    state_dir: Path | None = None,
    seed: bool = False,
    seed_invoices: int = 24,
    seed_customers: int = 0,
    autopay_seconds: float = 0,
    autopay_share: float = 0.3,
) -> Sandbox:
    """Start both simulators; optionally seed the tenant and pay invoices now and then."""
    sandbox = Sandbox(
        Served(M3Simulator(), host, m3_port),
        Served(StripeSimulator(), host, stripe_port),
        state_dir,
    )
    sandbox.load()
    m3: M3Simulator = sandbox.m3.app  # type: ignore[assignment]
    stripe: StripeSimulator = sandbox.stripe.app  # type: ignore[assignment]
    if seed:
        with m3.lock:
            seed_tenant(m3.state, invoices=seed_invoices, customers=seed_customers)
    sandbox.m3.start()
    sandbox.stripe.start()
    if state_dir is not None:
        sandbox.every(5, sandbox.save, "save")
    if autopay_seconds:
        rng = random.Random()

        def autopay() -> None:
            paid = stripe.pay_random_open_invoices(autopay_share, rng)
            if paid:
                logger.info("Sandbox customers paid %d Stripe invoice(s)", len(paid))

        sandbox.every(autopay_seconds, autopay, "autopay")
    return sandbox
