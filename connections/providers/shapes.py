"""The shape of a webhook event's object: the fields the flows read, their types and ranges.

A signed body is checked against its type's shape before it is stored; one that fails is
refused with 400 and stored nowhere, as a bad signature is (a flow must never meet a ``True``
where it reads an object, a float where it reads cents, or a year past 9999).  A shape lists
only what is read: every other field passes untouched.  Fields are optional unless marked
required, since a real event may leave them out; when present they must have their type.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

# Amounts in minor units: Stripe's largest amount is 99,999,999 (eight digits); ten more
# digits leave room for any currency and still fit a 64-bit integer with margin.
MAX_MINOR = 10**15
# Event times: not before 2000, not more than a day ahead of this clock.
EARLIEST_EPOCH = 946_684_800
AHEAD_SECONDS = 86_400

Check = Callable[[Any], str]  # "" when the value is acceptable, else what is wrong with it


def text(limit: int = 255) -> Check:
    def check(value: Any) -> str:
        if not isinstance(value, str) or not value or len(value) > limit:
            return f"is not text of 1 to {limit} characters"
        return "" if value.isprintable() else "holds characters that cannot be printed"

    return check


def whole(low: int, high: int) -> Check:
    def check(value: Any) -> str:
        if not isinstance(value, int) or isinstance(value, bool):
            return "is not a whole number"
        return "" if low <= value <= high else f"is outside {low} to {high}"

    return check


def epoch(value: Any) -> str:
    """A Unix time (seconds) from 2000 to a day ahead of now."""
    return whole(EARLIEST_EPOCH, int(time.time()) + AHEAD_SECONDS)(value)


amount = whole(0, MAX_MINOR)
signed_amount = whole(-MAX_MINOR, MAX_MINOR)


def currency(value: Any) -> str:
    if isinstance(value, str) and len(value) == 3 and value.isascii() and value.isalpha():
        return ""
    return "is not a three-letter currency code"


def flag(value: Any) -> str:
    return "" if isinstance(value, bool) else "is not true or false"


def text_map(value: Any) -> str:
    """Metadata: an object of text values (Stripe: keys up to 40, values up to 500)."""
    if not isinstance(value, dict):
        return "is not an object"
    for key, item in value.items():
        if not isinstance(item, str) or len(key) > 40 or len(item) > 500:
            return f"has a value for {key[:40]!r} that is not text of up to 500 characters"
    return ""


def nullable(inner: Check) -> Check:
    def check(value: Any) -> str:
        return "" if value is None else inner(value)

    return check


@dataclass(frozen=True)
class Shape:
    """An object's fields as ``name: check``; ``required`` names those that must be there."""

    fields: Mapping[str, Check | Shape | ListOf]
    required: tuple[str, ...] = ()

    def __call__(self, value: Any) -> str:
        return problem(value, self)


@dataclass(frozen=True)
class ListOf:
    item: Check | Shape
    limit: int = 1000

    def __call__(self, value: Any) -> str:
        if not isinstance(value, list):
            return "is not a list"
        if len(value) > self.limit:
            return f"has more than {self.limit} entries"
        for n, entry in enumerate(value):
            if reason := self.item(entry):
                return f"entry {n + 1} {reason}"
        return ""


def problem(value: Any, shape: Shape, path: str = "") -> str:
    """What is wrong with ``value`` as ``shape`` ("" when nothing), naming the field."""
    if not isinstance(value, dict):
        return f"{path or 'the object'} is not an object"
    for name in shape.required:
        if name not in value:
            return f"{path}{name} is missing"
    for name, check in shape.fields.items():
        if name not in value:
            continue
        if isinstance(check, Shape):
            if reason := problem(value[name], check, f"{path}{name}."):
                return reason
        elif reason := check(value[name]):
            return f"{path}{name} {reason}"
    return ""
