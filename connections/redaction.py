"""Redaction of secrets from anything logged, stored in audit payloads or shown to a user.

Two layers: keys that name a secret (``password``, ``client_secret``, ``Authorization`` …) have
their value replaced wholesale, and text is scrubbed of credential-shaped substrings (bearer
tokens, form-encoded secrets, PEM keys) and of the exact secret values a ``Redactor`` knows.

What a particular system's secrets look like (Stripe's ``sk_live_…``, an ``.ionapi``'s ``sask``)
is declared by its provider package; the provider registry adds those patterns here when it is
loaded (``register``), so this module depends on no provider.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

logger = logging.getLogger(__name__)

MASK = "***"

_SECRET_KEY = re.compile(
    r"(pass(word|wd)?$|secret|token|api[_-]?key|apikey|authori[sz]ation|cookie|signature|"
    r"private[_-]?key|credential)",
    re.IGNORECASE,
)
_SECRET_KEY_NAMES: set[str] = set()  # exact key names systems declare (lower case)
_TEXT_PATTERNS = [
    # Authorization headers and bearer tokens in any text.
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 " + MASK),
    # key=value pairs in form bodies, query strings and messages.
    (
        re.compile(
            r"(?i)\b(password|client_secret|refresh_token|access_token|api_key|token|secret)"
            r"(\"?\s*[=:]\s*\"?)([^&\s\",}]+)"
        ),
        r"\1\2" + MASK,
    ),
    # PEM private keys.
    (
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
        "-----PRIVATE KEY " + MASK + "-----",
    ),
]


_is_secret_key: dict[str, bool] = {}  # key names seen, answered once (payload keys repeat)
_any_pattern: list[re.Pattern[str]] = []  # every text pattern in one, to skip clean text fast


def register(
    *, patterns: Iterable[tuple[re.Pattern[str], str]] = (), keys: Iterable[str] = ()
) -> None:
    """Add a system's secret shapes: text patterns and exact payload key names."""
    for pattern in patterns:
        if pattern not in _TEXT_PATTERNS:
            _TEXT_PATTERNS.append(pattern)
    _SECRET_KEY_NAMES.update(k.lower() for k in keys)
    _is_secret_key.clear()
    _any_pattern.clear()


def is_secret_key(name: str) -> bool:
    """Whether a mapping key names a secret whose value must never be shown."""
    name = str(name)
    known = _is_secret_key.get(name)
    if known is None:
        known = name.lower() in _SECRET_KEY_NAMES or bool(_SECRET_KEY.search(name))
        if len(_is_secret_key) < 10_000:
            _is_secret_key[name] = known
    return known


def _combined() -> re.Pattern[str]:
    """One pattern matching wherever any text pattern would (each with its own flags)."""
    if not _any_pattern:
        parts = []
        for pattern, _ in _TEXT_PATTERNS:
            source, flags = pattern.pattern, pattern.flags
            if source.startswith("(?i)"):
                source, flags = source[4:], flags | re.IGNORECASE
            letters = "".join(
                letter
                for flag, letter in ((re.IGNORECASE, "i"), (re.DOTALL, "s"), (re.MULTILINE, "m"))
                if flags & flag
            )
            parts.append(f"(?{letters}:{source})" if letters else f"(?:{source})")
        _any_pattern.append(re.compile("|".join(parts)))
    return _any_pattern[0]


def scrub_text(text: str) -> str:
    """Mask credential-shaped substrings in free text."""
    if not _combined().search(text):
        return text
    for pattern, replacement in _TEXT_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class Redactor:
    """Redacts known secret values (a connection's credentials) as well as secret-named keys."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first so a secret containing another is masked whole; tiny values are ignored
        # (masking "1" everywhere would destroy the payload and protect nothing).
        self._values = sorted(
            {s for s in secrets if isinstance(s, str) and len(s) >= 4}, key=len, reverse=True
        )

    def text(self, text: str) -> str:
        """Scrub a string."""
        if len(text) < 4:  # shorter than any secret value or credential-shaped text
            return text
        for value in self._values:
            if value in text:
                text = text.replace(value, MASK)
        return scrub_text(text)

    def __call__(self, obj: Any) -> Any:
        """Return a deep copy of ``obj`` with secrets masked (dicts, lists, strings)."""
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, Mapping):
            return {
                k: (MASK if is_secret_key(k) and v not in (None, "") else self(v))
                for k, v in obj.items()
            }
        if isinstance(obj, list | tuple):
            return [self(v) for v in obj]
        if isinstance(obj, bytes):
            return self.text(obj.decode("utf-8", "replace"))
        if isinstance(obj, str):
            return self.text(obj)
        return obj
