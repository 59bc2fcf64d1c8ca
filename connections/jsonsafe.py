"""Whether a JSON value can be stored and read back safely, wherever it came from.

PostgreSQL's text and JSON types refuse NUL characters and unpaired surrogates; JSON has no
NaN or infinity; Python's parser recurses, so deep nesting must be refused before parsing.
"""

from __future__ import annotations

import logging
import math
from typing import Any

logger = logging.getLogger(__name__)

MAX_DEPTH = 64


def too_deep(text: str, limit: int = MAX_DEPTH) -> bool:
    """Whether JSON text nests brackets deeper than ``limit`` (checked before parsing)."""
    depth = 0
    for char in text:
        if char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def problem(value: Any) -> str:
    """What makes ``value`` unstorable ("" when nothing does)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(item, str):
            if "\x00" in item:
                return "it holds a NUL character"
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return "it holds an unpaired surrogate"
        elif isinstance(item, float) and not math.isfinite(item):
            return "it holds a number out of range (NaN or infinity)"
    return ""
