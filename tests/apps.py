"""An app that registers the test-only flow in a separate worker process (settings_worker)."""

import logging

from django.apps import AppConfig

logger = logging.getLogger(__name__)


class TestFlowsConfig(AppConfig):
    name = "tests"
    label = "mlc_tests"

    def ready(self) -> None:
        from syncs.flows import FLOWS
        from tests.syncs.testflow import LedgerTestFlow

        FLOWS[LedgerTestFlow.key] = LedgerTestFlow
