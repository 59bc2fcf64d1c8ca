"""Fixtures shared by the provider tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def sleeps() -> list[float]:
    """Collects the waits a client asks for instead of sleeping them."""
    return []
