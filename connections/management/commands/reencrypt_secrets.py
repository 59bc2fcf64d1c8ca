"""``manage.py reencrypt_secrets``: re-encrypt all credentials with the first FERNET_KEYS key."""

from __future__ import annotations

import logging
from typing import Any

from django.core.management.base import BaseCommand

from connections.services import secrets_reencrypt

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored credential and token with the first key in FERNET_KEYS "
        "(key rotation: put the new key first, run this, then drop the old key)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        counts = secrets_reencrypt()
        self.stdout.write(
            self.style.SUCCESS(
                f"Re-encrypted {counts['connections']} connection(s) and "
                f"{counts['oauth_tokens']} OAuth token(s) with the first key."
            )
        )
