"""Parsing and validation of Infor ION API credential files (``.ionapi``).

An ``.ionapi`` file is a JSON object issued per tenant and authorised app.  Required keys:
``ti ci cs iu pu ot saak sask``; ``cn oa or`` are known and optional; ``dt ev v`` appear in real
files with an unverified meaning and are kept as they are.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

logger = logging.getLogger(__name__)

REQUIRED_KEYS = ("ti", "ci", "cs", "iu", "pu", "ot", "saak", "sask")
URL_KEYS = ("iu", "pu")
MAX_FILE_BYTES = 64 * 1024


class IonApiError(ValueError):
    """The file is not a usable .ionapi file; the message is safe to show a user."""


def _join(base: str, path: str) -> str:
    if not path:
        return base
    return base.rstrip("/") + "/" + path.lstrip("/")


@dataclass(frozen=True)
class IonApi:
    """A parsed .ionapi file with the URLs derived from it."""

    values: dict[str, str]

    @property
    def tenant(self) -> str:
        return self.values["ti"]

    @property
    def token_url(self) -> str:
        return _join(self.values["pu"], self.values["ot"])

    @property
    def revoke_url(self) -> str | None:
        path = self.values.get("or")
        return _join(self.values["pu"], path) if path else None

    @property
    def gateway_url(self) -> str:
        """``{iu}/{ti}``: the tenant's root on the ION API gateway."""
        return _join(self.values["iu"], self.values["ti"])


def parse_ionapi(content: bytes | str) -> IonApi:
    """Parse and validate the text of an .ionapi file.

    Raises ``IonApiError`` with a message a finance user can act on (never echoing secrets).
    """
    if isinstance(content, bytes):
        if len(content) > MAX_FILE_BYTES:
            raise IonApiError("This file is too large to be an .ionapi file.")
        try:
            content = content.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise IonApiError("This file is not text: is it really an .ionapi file?") from None
    content = content.lstrip("\ufeff")
    try:
        data: Any = json.loads(content)
    except RecursionError:
        raise IonApiError("This file is not an .ionapi file (it is nested far too deep).") from None
    except json.JSONDecodeError as exc:
        raise IonApiError(
            f"This file is not valid JSON (line {exc.lineno}, column {exc.colno}): "
            "download the .ionapi file again from ION API > Authorized Apps."
        ) from None
    if not isinstance(data, dict):
        raise IonApiError("An .ionapi file holds one JSON object; this one does not.")
    missing = [k for k in REQUIRED_KEYS if not isinstance(data.get(k), str) or not data[k].strip()]
    if missing:
        raise IonApiError(
            "This .ionapi file lacks required keys: "
            + ", ".join(missing)
            + ". Download it for a backend service app (it must include saak and sask)."
        )
    for key in URL_KEYS:
        parsed = urlparse(data[key].strip())
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise IonApiError(f"The “{key}” value is not an http(s) URL.")
    values = {k: str(v).strip() for k, v in data.items() if isinstance(v, str | int | float)}
    return IonApi(values=values)
