"""Template tags for the finance admin: the overview, ages, labelled payloads."""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal
from typing import Any

from django import template
from django.utils import timezone

from syncs import display
from syncs.overview import Overview, overview

logger = logging.getLogger(__name__)

register = template.Library()


@register.simple_tag
def mlc_overview() -> Overview:
    """Each integration's health and what waits for a person (the admin index)."""
    return overview()


@register.filter
def age_since(value: datetime | None) -> str:
    """``3 h`` since ``value`` ("—" when there is none)."""
    if value is None:
        return "—"
    return display.age((timezone.now() - value).total_seconds())


@register.filter
def age_until(value: datetime | None) -> str:
    """``in 3 min`` until ``value`` ("due now" once it has passed)."""
    if value is None:
        return "—"
    seconds = (value - timezone.now()).total_seconds()
    return f"in {display.age(seconds)}" if seconds >= 1 else "due now"


@register.filter
def labelled(payload: Any) -> list[tuple[str, str]]:
    """A payload as (label, value) rows, amounts in major units."""
    return display.fields(payload)


@register.filter
def money(value: Any, currency: str = "") -> str:
    """An amount with its currency and the currency's decimals (``873.60 EUR``); "—" for none;
    the value as it is when it is no amount."""
    if value is None or value == "":
        return "—"
    try:
        amount = Decimal(str(value))
    except ArithmeticError:
        return str(value)
    return display.amount_text(amount, str(currency or ""))
