"""django-q2 task entry points of connections: thin, they call a service."""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def rotate_due_keys() -> dict[str, int]:
    """Rotate every Stripe key whose connection's schedule says it is due."""
    from connections.services import keys_rotate_due

    return keys_rotate_due()
