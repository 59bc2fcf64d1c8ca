"""The Wise provider passes the provider contract, against the Wise simulator."""

from __future__ import annotations

from typing import Any

import pytest

from connections.models import Connection
from connections.providers.wise import WiseProvider
from connections.sandbox.base import Served
from connections.sandbox.wise import WiseSimulator
from tests.connections.providers.contract import ProviderContract


class TestWiseContract(ProviderContract):
    provider = WiseProvider
    rate_limit_subject = "GET /v2/profiles"
    secret_examples = (
        "Authorization: Bearer 6f1c3a52-9a3b-4c7e-9d2f-0c8e2b7a1d44",
        "client_secret=9xY2secretvalue",
    )

    @pytest.fixture
    def connection(self, wise_connection: Connection) -> Connection:
        return wise_connection

    @pytest.fixture
    def simulator(self, wise_sim: Served) -> Any:
        return wise_sim.app

    def break_credentials(self, connection: Connection) -> str:
        wrong = "not-the-client-secret-0123"
        connection.credentials = {**connection.credentials, "client_secret": wrong}
        connection.save()
        return wrong

    def make_unreachable(self, connection: Connection) -> None:
        connection.settings = {**connection.settings, "base_url": "http://127.0.0.1:9"}
        connection.save()

    def signed_delivery(self, connection: Connection, body: bytes) -> dict[str, str]:
        sim: WiseSimulator = self._sim  # the simulator whose key the connection trusts
        return {"X-Signature-SHA256": sim.sign(body), "X-Delivery-Id": "3a9f6c1e-delivery"}

    def event_body(self) -> dict[str, Any]:
        return {
            "data": {
                "resource": {"type": "transfer", "id": 111, "profile_id": 222, "account_id": 333},
                "current_state": "processing",
                "previous_state": "incoming_payment_waiting",
                "occurred_at": "2026-11-30T10:00:00Z",
            },
            "subscription_id": "01234567-89ab-cdef-0123-456789abcdef",
            "event_type": "transfers#state-change",
            "schema_version": "2.0.0",
            "sent_at": "2026-11-30T10:00:01Z",
        }

    @pytest.fixture(autouse=True)
    def _keep_sim(self, wise_sim: Served) -> None:
        self._sim = wise_sim.app
