"""Rotating a Stripe secret key: the one-off RSA key pair its new secret is encrypted to, and
reading that secret back from Stripe's answer.

Stripe's v2 API (``POST /v2/iam/api_keys/{id}/rotate``) needs a PEM RSA public key of at least
2048 bits when it rotates a secret key, and answers with the new key whose
``secret_key.encrypted_secret`` holds the new secret as a JWE in compact form (``format`` =
``jwe_compact``); test-mode keys also carry it in plain as ``secret_key.token``.  Which JWE
algorithms Stripe uses is not published (searched): any RSA-OAEP key wrap with an AES content
encryption is read here — never RSA1_5 or a symmetric ``dir`` key — and a test rotates under
each of them with no plain token.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from jwcrypto import jwe, jwk
from jwcrypto.common import JWException

from connections.providers.capabilities import RotatedSecretUnreadable

logger = logging.getLogger(__name__)

KEY_BITS = 3072
ALLOWED_ALGS = [
    "RSA-OAEP",
    "RSA-OAEP-256",
    "A128GCM",
    "A192GCM",
    "A256GCM",
    "A128CBC-HS256",
    "A192CBC-HS384",
    "A256CBC-HS512",
]


class SecretUnreadable(RotatedSecretUnreadable):
    """Stripe's answer holds no new secret this key pair can read (message safe to show)."""


def new_key_pair() -> tuple[str, str]:
    """A fresh RSA key pair as PEM text: (private, public).  The private half is kept
    (encrypted) only until the new secret is read."""
    key = jwk.JWK.generate(kty="RSA", size=KEY_BITS)
    private = key.export_to_pem(private_key=True, password=None).decode()
    public = key.export_to_pem(private_key=False).decode()
    return private, public


def public_key_param(public_pem: str, key_id: str) -> dict[str, Any]:
    """The ``public_key`` parameter of a rotation."""
    return {"id": key_id, "pem_key": {"algorithm": "RSA", "data": public_pem}}


def read_secret(api_key: Mapping[str, Any], private_pem: str) -> str:
    """The new secret from a v2 API key object: decrypted from ``encrypted_secret`` when there
    is one, else the plain test-mode ``token``."""
    secret = api_key.get("secret_key")
    if not isinstance(secret, Mapping):
        raise SecretUnreadable("Stripe's answer holds no secret key.")
    encrypted = secret.get("encrypted_secret")
    if isinstance(encrypted, Mapping) and encrypted.get("ciphertext"):
        if encrypted.get("format") not in (None, "jwe_compact"):
            raise SecretUnreadable(
                f"Stripe sent the new secret as {str(encrypted.get('format'))[:40]}, which "
                "ml-connector cannot read."
            )
        token = jwe.JWE()
        token.allowed_algs = ALLOWED_ALGS
        try:
            token.deserialize(
                str(encrypted["ciphertext"]), key=jwk.JWK.from_pem(private_pem.encode())
            )
        except (JWException, ValueError, TypeError) as exc:
            raise SecretUnreadable(
                f"The new secret could not be decrypted ({type(exc).__name__})."
            ) from None
        value = token.payload.decode("utf-8", "replace").strip()
    else:
        value = str(secret.get("token") or "").strip()
    if not value.startswith(("sk_", "rk_")):
        raise SecretUnreadable("Stripe's answer holds no readable secret key.")
    return value


def public_of(private_pem: str) -> str:
    """The public half of a kept private key (PEM)."""
    return jwk.JWK.from_pem(private_pem.encode()).export_to_pem(private_key=False).decode()
