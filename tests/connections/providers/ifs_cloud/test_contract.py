"""The IFS Cloud provider passes the provider contract, against the IFS simulator."""

from __future__ import annotations

from typing import Any

import pytest

from connections.models import Connection
from connections.providers.ifs_cloud import IfsCloud
from connections.sandbox.base import Served
from tests.connections.providers.contract import ProviderContract


class TestIfsCloudContract(ProviderContract):
    provider = IfsCloud
    rate_limit_subject = "$metadata"
    secret_examples = ("client_secret=9xY2secretvalue", '"access_token": "eyJhbGciOiJSUzI1Ni"')

    @pytest.fixture
    def connection(self, ifs_connection: Connection) -> Connection:
        return ifs_connection

    @pytest.fixture
    def simulator(self, ifs_sim: Served) -> Any:
        return ifs_sim.app

    def break_credentials(self, connection: Connection) -> str:
        wrong = "not-the-client-secret-0123"
        connection.credentials = {**connection.credentials, "client_secret": wrong}
        connection.save()
        return wrong

    def make_unreachable(self, connection: Connection) -> None:
        connection.settings = {**connection.settings, "base_url": "http://127.0.0.1:9"}
        connection.save()
