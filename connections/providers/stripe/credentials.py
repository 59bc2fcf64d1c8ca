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


# docs.stripe.com/rate-limits: "100 operations per second" in live mode, 25 in a sandbox, and
# "a default limit of 25 requests per second" for each endpoint.
LIVE_PER_SECOND, SANDBOX_PER_SECOND, ENDPOINT_PER_SECOND = 100, 25, 25
DEFAULT_SHARE_PERCENT = 80


def percent(value: Any) -> int:
    try:
        number = int(str(value).strip().rstrip("%").strip())
    except ValueError:
        raise ValidationError("Give a whole number of percent, from 1 to 100.") from None
    if not 1 <= number <= 100:
        raise ValidationError("Give a whole number of percent, from 1 to 100.")
    return number


def live_key(key: str) -> bool:
    """Whether a secret or restricted key is a live-mode one (else a sandbox's)."""
    return str(key).startswith(("sk_live_", "rk_live_"))


def limits(connection: Any) -> tuple[float, float]:
    """(requests a minute for the account, requests a second for each endpoint) this
    connection may use: what is set, else its share of Stripe's published limits for the key's
    mode."""
    settings = connection.settings or {}
    share = float(connection.setting("account_share_percent", DEFAULT_SHARE_PERCENT)) / 100
    account = settings.get("rate_limit_per_minute")
    if account in (None, ""):
        live = live_key((connection.credentials or {}).get("api_key", ""))
        account = (LIVE_PER_SECOND if live else SANDBOX_PER_SECOND) * 60 * share
    endpoint = settings.get("endpoint_rate_per_second")
    if endpoint in (None, ""):
        endpoint = ENDPOINT_PER_SECOND * share
    return float(account), float(endpoint)


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
            rate_per_minute=None,
            burst=5,  # no burst is published: half the least a server may allow (10)
            base_url="https://api.stripe.com",
            rate_help="Blank (the default): the share below of Stripe's limit for this key — "
            "100 requests a second for a live key (sk_live_, rk_live_), 25 for a sandbox (test) "
            "key (docs.stripe.com/rate-limits). A number here is used as it is.",
        ),
        FieldSpec(
            "account_share_percent",
            "Share of Stripe's limits to use (%)",
            secret=False,
            default=DEFAULT_SHARE_PERCENT,
            clean=percent,
            help="Stripe's limits are the whole account's: its live checkout traffic and other "
            "integrations use them too. 80 % leaves a live account 20 requests a second of its "
            "100, and 5 of each endpoint's 25, for them. Applies where the limits are blank.",
        ),
        FieldSpec(
            "endpoint_rate_per_second",
            "Limit of each endpoint (requests per second)",
            secret=False,
            required=False,
            clean=positive_int,
            help="Blank (the default): the share above of the 25 requests a second Stripe allows "
            "each named operation (POST /v1/invoices, POST /v1/invoices/{id}/finalize …) "
            "beside the account's limit (docs.stripe.com/rate-limits). Set it if Stripe has "
            "set a stricter limit on an endpoint of this account.",
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
