"""What a Cin7 Core connection needs: the account id and an API application key (Cin7 Core >
Integrations > API), and where the API is.  The rate limit is Cin7's: 60 calls a minute for each
application key, shared by every worker using it."""

from __future__ import annotations

import logging
import re
from typing import Any

from django.core.exceptions import ValidationError

from connections.providers.spec import ConnectionSpec, FieldSpec, http_settings, text

logger = logging.getLogger(__name__)

BASE_URL = "https://inventory.dearsystems.com/ExternalApi/v2/"


def guid(value: Any) -> str:
    value = text(value)
    if not re.fullmatch(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}", value):
        raise ValidationError(
            "Cin7 Core shows this as a GUID, e.g. 704ef231-cd93-49c9-a201-26b4b5d0d35b."
        )
    return value


SPEC = ConnectionSpec(
    credentials=(
        FieldSpec("account_id", "Account ID", secret=False, clean=guid),
        FieldSpec(
            "application_key",
            "API application key",
            clean=guid,
            help="Cin7 Core > Integrations > API: the key of the application ml-connector uses.",
        ),
    ),
    # Cin7 allows 60 calls a minute per application key; 58 leaves room for clocks and the
    # network, so a minute of steady work never meets its 503.
    settings=http_settings(rate_per_minute=58, base_url=BASE_URL, burst=1),
)
