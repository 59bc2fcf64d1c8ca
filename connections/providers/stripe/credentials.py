"""What a Stripe connection needs: a secret (or restricted) key and the webhook signing secret,
and — to rotate the key on a schedule — the key's id in Stripe and how often and how gently."""

from __future__ import annotations

import logging
import re
from typing import Any

from django.core.exceptions import ValidationError

from connections.providers.spec import (
    ConnectionSpec,
    FieldSpec,
    http_settings,
    positive_int,
    text,
)

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


# Stripe keeps the current key working for at most 7 days after a rotation.
MAX_GRACE_MINUTES = 7 * 24 * 60


def api_key_id(value: Any) -> str:
    value = text(value)
    if not re.fullmatch(r"[A-Za-z0-9_]{3,100}", value):
        raise ValidationError("An API key id is a Stripe id such as ak_61Sx…, not the key itself.")
    return value


def grace_minutes(value: Any) -> int:
    minutes = positive_int(value)
    if minutes > MAX_GRACE_MINUTES:
        raise ValidationError("Stripe keeps an old key at most 7 days (10080 minutes).")
    return minutes


def rotate_days(value: Any) -> int:
    days = positive_int(value)
    if days > 3650:
        raise ValidationError("Rotate at least once every ten years (3650 days).")
    return days


def _rotation_needs_key_id(settings: dict[str, Any]) -> None:
    if settings.get("rotate_every_days") and not settings.get("api_key_id"):
        raise ValidationError(
            "To rotate the key on a schedule, give its API key id (ak_…) as well."
        )


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
    settings=(
        *http_settings(
            rate_per_minute=1500,
            base_url="https://api.stripe.com",
            rate_help="1,500 a minute is 25 requests a second: Stripe's limit for a sandbox "
            "(test mode) account, and its default for each endpoint. A live account allows 100 a "
            "second in all (docs.stripe.com/rate-limits), shared with its live checkout "
            "traffic: raise this only as far as that traffic leaves room.",
        ),
        FieldSpec(
            "endpoint_rate_per_second",
            "Limit of each endpoint (requests per second)",
            secret=False,
            default=25,
            clean=positive_int,
            help="Stripe limits each named operation (POST /v1/invoices, POST "
            "/v1/invoices/{id}/finalize …) to 25 requests a second by default, beside the "
            "account's limit above (docs.stripe.com/rate-limits). Lower it if Stripe has set "
            "a stricter limit on an endpoint of this account.",
        ),
        FieldSpec(
            "api_key_id",
            "API key id (for rotation)",
            secret=False,
            required=False,
            clean=api_key_id,
            help="The id Stripe gives the secret key above (API keys in the Dashboard, or the "
            "v2 API key list), needed only to rotate it. ml-connector keeps it up to date "
            "after each rotation.",
        ),
        FieldSpec(
            "rotate_every_days",
            "Rotate the key every (days)",
            secret=False,
            required=False,
            clean=rotate_days,
            help="Blank: never rotated by ml-connector. Otherwise a new key is made and stored "
            "this often, and the old one stops working after the grace period.",
        ),
        FieldSpec(
            "rotation_grace_minutes",
            "Old key keeps working for (minutes)",
            secret=False,
            default=1440,
            clean=grace_minutes,
            help="After a rotation the old key still works this long (at most 10080, 7 days), "
            "so runs already under way finish with it.",
        ),
    ),
    check_settings=_rotation_needs_key_id,
)
