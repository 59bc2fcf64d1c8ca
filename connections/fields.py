"""Fernet-encrypted model fields that follow ``settings.FERNET_KEYS`` as it changes.

django-fernet-fields-v2 caches its Fernet on the field instance, so a rotated key list would only
take effect after a restart (and never inside a test).  These subclasses build the MultiFernet
from the current setting (memoised per key tuple): the first key encrypts, every key decrypts.
``EncryptedJSONField`` stores a JSON document encrypted as one blob.
"""

from __future__ import annotations

import functools
import json
import logging
from typing import Any

from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings
from fernet_fields import EncryptedTextField as _EncryptedTextField
from fernet_fields import hkdf

logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=8)
def _multifernet(keys: tuple[str, ...], use_hkdf: bool) -> MultiFernet:
    derived = [hkdf.derive_fernet_key(k) if use_hkdf else k for k in keys]
    return MultiFernet([Fernet(k) for k in derived])


def current_fernet() -> MultiFernet:
    """The MultiFernet for the keys configured right now."""
    keys = tuple(getattr(settings, "FERNET_KEYS", None) or [settings.SECRET_KEY])
    return _multifernet(keys, getattr(settings, "FERNET_USE_HKDF", True))


class EncryptedTextField(_EncryptedTextField):
    """An encrypted text column keyed by the current ``FERNET_KEYS``."""

    @property
    def fernet(self) -> MultiFernet:  # type: ignore[override]
        return current_fernet()


class EncryptedJSONField(EncryptedTextField):
    """An encrypted JSON document (a dict of credentials, say)."""

    def get_prep_value(self, value: Any) -> str | None:
        if value is None:
            return None
        return json.dumps(value, sort_keys=True)

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str):
            return json.loads(value) if value else {}
        return value

    def value_to_string(self, obj: Any) -> str:
        return json.dumps(self.value_from_object(obj))
