"""What a Stripe connection needs: a secret (or restricted) key and the webhook signing secret."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import ValidationError

from connections.providers.spec import ConnectionSpec, FieldSpec, http_settings, text

logger = logging.getLogger(__name__)


def secret_key(value: Any) -> str:
    value = text(value)
    if not value.startswith(("sk_", "rk_")):
        raise ValidationError(
            "A Stripe secret key starts with sk_ or rk_ (never a publishable pk_)."
        )
    return value


def signing_secret(value: Any) -> str:
    value = text(value)
    if not value.startswith("whsec_"):
        raise ValidationError("A Stripe webhook signing secret starts with whsec_.")
    return value


SPEC = ConnectionSpec(
    credentials=(
        FieldSpec("api_key", "Secret key", clean=secret_key),
        FieldSpec(
            "webhook_secret",
            "Webhook signing secret",
            required=False,
            clean=signing_secret,
            help="Shown by Stripe when the endpoint is added (Developers > Webhooks).",
        ),
    ),
    settings=http_settings(rate_per_minute=1500, base_url="https://api.stripe.com"),
)
