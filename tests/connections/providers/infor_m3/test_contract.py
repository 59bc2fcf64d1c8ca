"""The Infor CloudSuite (M3) provider passes the provider contract, against the M3 simulator."""

from __future__ import annotations

from typing import Any

import pytest

from connections.models import Connection, OAuthToken
from connections.providers.infor_m3 import InforM3
from connections.sandbox.base import Served
from tests.connections.providers.contract import ProviderContract


class TestInforM3Contract(ProviderContract):
    provider = InforM3
    rate_limit_subject = "bulk:MRS001MI"
    secret_examples = ("sask=abc123secretvalue", '"saak": "TENANT#key-value"')

    @pytest.fixture
    def connection(self, m3_connection: Connection) -> Connection:
        return m3_connection

    @pytest.fixture
    def simulator(self, m3_sim: Served) -> Any:
        return m3_sim.app

    def break_credentials(self, connection: Connection) -> str:
        connection.credentials = {**connection.credentials, "sask": "wrong-service-secret"}
        connection.save()
        OAuthToken.objects.filter(connection=connection).delete()
        return "wrong-service-secret"

    def make_unreachable(self, connection: Connection) -> None:
        nowhere = "http://127.0.0.1:9"
        connection.credentials = {**connection.credentials, "iu": nowhere, "pu": nowhere + "/as/"}
        connection.save()
