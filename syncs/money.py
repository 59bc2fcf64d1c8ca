"""Money between systems: decimal amounts and Stripe's minor units, exact to the cent.

An amount that cannot be expressed exactly in the currency's minor unit raises ``ValueError``;
nothing is ever rounded silently.
"""

from __future__ import annotations

import logging
from decimal import Decimal, InvalidOperation

import pycountry

logger = logging.getLogger(__name__)

# Stripe's zero- and three-decimal currencies.
ZERO_DECIMAL = frozenset(
    {
        "BIF",
        "CLP",
        "DJF",
        "GNF",
        "JPY",
        "KMF",
        "KRW",
        "MGA",
        "PYG",
        "RWF",
        "UGX",
        "VND",
        "VUV",
        "XAF",
        "XOF",
        "XPF",
    }
)
THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})


def currency_known(code: str) -> bool:
    """Whether ``code`` is an ISO 4217 currency (pycountry's list)."""
    text = str(code or "").strip().upper()
    return len(text) == 3 and pycountry.currencies.get(alpha_3=text) is not None


def exponent(currency: str) -> int:
    code = currency.upper()
    return 0 if code in ZERO_DECIMAL else 3 if code in THREE_DECIMAL else 2


def decimal(value: object) -> Decimal:
    """Parse an ERP amount string ("1210.50", " 12 ") exactly."""
    try:
        return Decimal(str(value).strip() or "0")
    except InvalidOperation:
        raise ValueError(f"{value!r} is not an amount") from None


def to_minor(amount: Decimal, currency: str) -> int:
    """1210.50 EUR → 121050; raises when the amount has more decimals than the currency."""
    scaled = amount.scaleb(exponent(currency))
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{amount} {currency.upper()} has more decimals than the currency allows")
    return int(scaled)


def from_minor(minor: int, currency: str) -> Decimal:
    """121050 EUR → Decimal("1210.50")."""
    exp = exponent(currency)
    sign, digits, _ = Decimal(int(minor)).as_tuple()
    return Decimal((sign, digits, -exp))  # exact at any size: no context precision applies
