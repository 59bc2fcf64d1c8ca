"""What a Wise connection needs: a personal API token or an OAuth client (id and secret), the
environment (sandbox or live: it picks the address and the key webhooks are verified with), the
profile that pays and the currency it pays from."""

from __future__ import annotations

import logging
import re
from typing import Any

from django.core.exceptions import ValidationError

from connections.providers.spec import ConnectionSpec, FieldSpec, http_settings, text, url

logger = logging.getLogger(__name__)

HOSTS = {"sandbox": "https://api.sandbox.transferwise.tech", "live": "https://api.wise.com"}


def environment(value: Any) -> str:
    value = text(value).lower()
    if value not in HOSTS:
        raise ValidationError("The environment is sandbox or live.")
    return value


def currency(value: Any) -> str:
    value = text(value).upper()
    if not re.fullmatch(r"[A-Z]{3}", value):
        raise ValidationError(f"“{value[:20]}” is not a currency code such as EUR.")
    return value


def profile_id(value: Any) -> str:
    value = text(value)
    if not re.fullmatch(r"[0-9]{1,20}", value):
        raise ValidationError("A Wise profile id is a number, such as 16055450.")
    return value


def public_key(value: Any) -> str:
    """A PEM RSA public key (Wise's webhook signing key), checked by loading it."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    value = text(value)
    try:
        key = serialization.load_pem_public_key(value.encode())
    except (ValueError, TypeError):
        raise ValidationError("This is not a PEM public key (BEGIN PUBLIC KEY).") from None
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size < 2048:
        raise ValidationError("Wise signs with an RSA key of 2048 bits or more.")
    return value.strip() + "\n"


# How a quoted transfer is paid for (Wise's quote reference, ``preferredPayIn``): "If you are
# funding the transfer from a Multi Currency Balance, you must set the payIn as BALANCE to get
# the correct pricing in the quote" (docs.wise.com/api-reference/quote, "Create an authenticated
# quote").  The journals this product posts credit the Wise balance, so BALANCE is the default.
PAY_IN = ("BALANCE", "BANK_TRANSFER")


def pay_in(value: Any) -> str:
    value = text(value).upper()
    if value not in PAY_IN:
        raise ValidationError(
            "Transfers are paid from the Wise balance (BALANCE) or by bank "
            "transfer (BANK_TRANSFER)."
        )
    return value


def _token_or_client(creds: dict[str, str]) -> None:
    if creds.get("api_token"):
        return
    if not (creds.get("client_id") and creds.get("client_secret")):
        raise ValidationError(
            "Give either a personal API token, or an OAuth client id and client secret."
        )


SPEC = ConnectionSpec(
    credentials=(
        FieldSpec(
            "api_token",
            "Personal API token",
            required=False,
            help="Wise > Settings > API tokens (long-lived). Or leave blank and give an OAuth "
            "client below.",
        ),
        FieldSpec("client_id", "OAuth client id", secret=False, required=False),
        FieldSpec(
            "client_secret",
            "OAuth client secret",
            required=False,
            help="For a partner OAuth client: tokens last 12 hours and are renewed ahead.",
        ),
    ),
    settings=(
        FieldSpec(
            "environment",
            "Environment",
            secret=False,
            default="sandbox",
            clean=environment,
            help="sandbox or live: picks Wise's address and the key its webhooks are signed with.",
        ),
        FieldSpec(
            "base_url",
            "Address (only to override)",
            secret=False,
            required=False,
            clean=url,
            help="Blank: Wise's own for the environment. Set it to reach a sandbox simulator.",
        ),
        FieldSpec(
            "profile_id",
            "Profile id",
            secret=False,
            required=False,
            clean=profile_id,
            help="The business profile that pays. Blank: the first business profile.",
        ),
        FieldSpec(
            "source_currency",
            "Pay from currency",
            secret=False,
            default="EUR",
            clean=currency,
            help="The balance transfers are quoted from.",
        ),
        FieldSpec(
            "pay_in",
            "Transfers paid by",
            secret=False,
            default="BALANCE",
            clean=pay_in,
            help="BALANCE: from the Wise balance (the journals credit it). BANK_TRANSFER: the "
            "transfer is funded by a bank payment. Wise prices a quote by how it is paid.",
        ),
        FieldSpec(
            "webhook_public_key",
            "Webhook public key (only to override)",
            secret=False,
            required=False,
            clean=public_key,
            multiline=True,
            help="Blank: Wise's published key for the environment.",
        ),
        *http_settings(rate_per_minute=6000, burst=50),
    ),
    check_credentials=_token_or_client,
)
