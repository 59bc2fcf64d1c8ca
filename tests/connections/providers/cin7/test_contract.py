"""The Cin7 Core provider passes the provider contract, against the Cin7 simulator."""

from __future__ import annotations

from typing import Any

import pytest

from connections.models import Connection
from connections.providers.cin7 import Cin7Core
from connections.sandbox.base import Served
from tests.connections.providers.contract import ProviderContract


class TestCin7Contract(ProviderContract):
    provider = Cin7Core
    rate_limit_subject = "GET /ExternalApi/v2/me"
    refused_words = "incorrect credentials"
    secret_examples = ("api-auth-applicationkey: 0342a546-e0c2-0dff-f0be-6a5e17154033",)

    @pytest.fixture
    def connection(self, cin7_connection: Connection) -> Connection:
        return cin7_connection

    @pytest.fixture
    def simulator(self, cin7_sim: Served) -> Any:
        return cin7_sim.app

    def break_credentials(self, connection: Connection) -> str:
        wrong = "0342a546-e0c2-0dff-f0be-000000000000"
        connection.credentials = {**connection.credentials, "application_key": wrong}
        connection.save()
        return wrong

    def make_unreachable(self, connection: Connection) -> None:
        connection.settings = {**connection.settings, "base_url": "http://127.0.0.1:9/"}
        connection.save()
