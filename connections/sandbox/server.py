"""Serves the simulators together, keeps their state across restarts, plays their users.

``SIMULATORS`` is the one list of simulators: adding a system's simulator is one line here.
"""

from __future__ import annotations

import logging
import pickle
import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connections.sandbox.base import Served, Simulator
from connections.sandbox.cin7 import Cin7Simulator
from connections.sandbox.ifs import IfsSimulator
from connections.sandbox.m3 import M3Simulator
from connections.sandbox.stampli import StampliSimulator
from connections.sandbox.story import DemoStory
from connections.sandbox.stripe import StripeSimulator
from connections.sandbox.wise import WiseSimulator

logger = logging.getLogger(__name__)

SIMULATORS: dict[str, type[Simulator]] = {
    M3Simulator.name: M3Simulator,
    StripeSimulator.name: StripeSimulator,
    IfsSimulator.name: IfsSimulator,
    WiseSimulator.name: WiseSimulator,
    StampliSimulator.name: StampliSimulator,
    Cin7Simulator.name: Cin7Simulator,
}


@dataclass
class Sandbox:
    """The running simulators, by name."""

    served: dict[str, Served]
    state_dir: Path | None = None
    stop_event: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def __getitem__(self, name: str) -> Served:
        return self.served[name]

    @property
    def simulators(self) -> dict[str, Simulator]:
        return {name: served.app for name, served in self.served.items()}

    def urls(self) -> dict[str, str]:
        return {name: served.url for name, served in self.served.items()}

    def save(self) -> None:
        if self.state_dir is None:
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for name, sim in self.simulators.items():
            path = self.state_dir / f"{name}.pickle"
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(pickle.dumps(sim.snapshot()))
            tmp.replace(path)

    def load(self) -> None:
        if self.state_dir is None:
            return
        for name, sim in self.simulators.items():
            path = self.state_dir / f"{name}.pickle"
            if path.exists():
                sim.restore(pickle.loads(path.read_bytes()))  # noqa: S301  (our own file)

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
        for served in self.served.values():
            served.stop()


def start_sandbox(
    *,
    host: str = "127.0.0.1",
    ports: Mapping[str, int] | None = None,
    state_dir: Path | None = None,
    seed: bool = False,
    seed_options: Mapping[str, Any] | None = None,
    activity_seconds: float = 0,
) -> Sandbox:
    """Start every simulator (port 0: any free port); optionally seed them and play their
    users every ``activity_seconds``."""
    ports = ports or {}
    sandbox = Sandbox(
        {name: Served(cls(), host, ports.get(name, 0)) for name, cls in SIMULATORS.items()},
        state_dir,
    )
    sandbox.load()
    if seed:
        for sim in sandbox.simulators.values():
            sim.seed(**(seed_options or {}))
    for served in sandbox.served.values():
        served.start()
    if state_dir is not None:
        sandbox.every(5, sandbox.save, "save")
    if activity_seconds:
        rng = random.Random()

        sims = sandbox.simulators
        story = DemoStory(sims["m3"], sims["stripe"]) if {"m3", "stripe"} <= set(sims) else None

        def activity() -> None:
            for name, sim in sandbox.simulators.items():
                happened = sim.activity(rng)
                if happened:
                    logger.info("Sandbox %s: %s", name, happened)
            if story is not None and (happened := story.tick()):
                logger.info("Sandbox story: %s", happened)

        sandbox.every(activity_seconds, activity, "activity")
    return sandbox
