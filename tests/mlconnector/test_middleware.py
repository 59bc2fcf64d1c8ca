"""A lost database connection answers 503 with a plain page, never a 500."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import OperationalError
from django.test import Client


def test_an_admin_page_that_meets_a_lost_database_is_a_503(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from syncs.templatetags import mlc_admin

    def gone(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(mlc_admin, "overview", gone)
    answer = admin_client.get("/admin/")
    assert answer.status_code == 503
    assert answer["Retry-After"] == "30"
    assert "The database cannot be reached right now" in answer.content.decode()
    assert "server closed" not in answer.content.decode()  # no technical text for the user
