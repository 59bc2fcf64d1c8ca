"""The Stripe provider passes the provider contract, against the Stripe simulator."""

from __future__ import annotations

import time
from typing import Any

import pytest

from connections.models import Connection
from connections.providers.stripe import StripeProvider
from connections.sandbox.base import Served
from connections.sandbox.stripe import sign
from tests.connections.providers.contract import ProviderContract


class TestStripeContract(ProviderContract):
    provider = StripeProvider
    rate_limit_subject = "/v1/customers"
    secret_examples = ("sk_live_51HxAbCdEf0123456789", "rk_test_abcdef123456", "whsec_abc123def")

    @pytest.fixture
    def connection(self, stripe_connection: Connection) -> Connection:
        return stripe_connection

    @pytest.fixture
    def simulator(self, stripe_sim: Served) -> Any:
        return stripe_sim.app

    def break_credentials(self, connection: Connection) -> str:
        connection.credentials = {**connection.credentials, "api_key": "sk_test_wrongwrongwrong"}
        connection.save()
        return "sk_test_wrongwrongwrong"

    def make_unreachable(self, connection: Connection) -> None:
        connection.settings = {**connection.settings, "base_url": "http://127.0.0.1:9"}
        connection.save()

    def event_body(self) -> dict[str, Any]:
        return {
            "id": "evt_1",
            "object": "event",
            "type": "invoice.paid",
            "created": int(time.time()),
            "data": {"object": {"id": "in_1", "object": "invoice"}},
        }

    def signed_delivery(self, connection: Connection, body: bytes) -> dict[str, str]:
        secret = connection.credentials["webhook_secret"]
        return {"Stripe-Signature": sign(body.decode(), secret)}
