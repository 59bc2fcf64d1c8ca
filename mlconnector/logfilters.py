"""A logging filter that scrubs anything shaped like a credential from every log line.

Defence in depth: the ApiClient already redacts what it logs; this catches a secret that reaches a
log message by another road (an exception text, a third-party library's debug line).
"""

from __future__ import annotations

import logging

from connections.redaction import scrub_text

logger = logging.getLogger(__name__)


class RedactingFilter(logging.Filter):
    """Rewrite the record's message with credential-shaped substrings masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is not ours to fix here
            return True
        cleaned = scrub_text(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = scrub_text(logging.Formatter().formatException(record.exc_info))
        return True
