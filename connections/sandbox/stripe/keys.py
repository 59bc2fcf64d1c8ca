"""Stripe's v2 API keys in the simulator: rotation with a sealed new secret, the old key
working through its grace period (docs.stripe.com/api/v2/iam/api-keys)."""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any

from jwcrypto import jwe, jwk
from jwcrypto.common import JWException

from connections.sandbox.stripe.common import (
    MAX_KEY_GRACE_MINUTES,
    StripeError,
    base64_url_decode,
)

logger = logging.getLogger(__name__)


class KeysApi:
    """The v2 API key endpoints and key checks.

    A mixin of ``StripeSimulator``, whose state it uses."""

    objects: dict[str, dict[str, dict[str, Any]]]
    events: list[dict[str, Any]]
    secret_sealing: tuple[str, str]
    plain_token: bool

    # -- API keys ---------------------------------------------------------------------------

    def _live(self, key: dict[str, Any]) -> bool:
        return key["expires_at"] is None or key["expires_at"] > self.clock()

    @property
    def api_key(self) -> str:
        """The newest key that still works (what a new connection is given)."""
        live = [k for k in self.api_keys.values() if self._live(k)]
        return max(live, key=lambda k: k["created"])["secret"] if live else ""

    @property
    def api_key_id(self) -> str:
        return next((k["id"] for k in self.api_keys.values() if k["secret"] == self.api_key), "")

    def _authenticate(self, auth: str) -> StripeError | None:
        secret = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else ""
        shown = secret[:8] + "****" if secret else "none"
        key = next((k for k in self.api_keys.values() if k["secret"] == secret), None)
        if key is None:
            return StripeError(401, "invalid_request_error", f"Invalid API Key provided: {shown}")
        if not self._live(key):
            return StripeError(401, "invalid_request_error", f"Expired API Key provided: {shown}")
        return None

    def _key_view(self, key: dict[str, Any]) -> dict[str, Any]:
        """A v2 API key object, without its secret."""
        iso = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(key["created"]))
        expires = key["expires_at"]
        return {
            "id": key["id"],
            "object": "v2.iam.api_key",
            "type": "secret_key",
            "name": key.get("name"),
            "note": None,
            "status": "active" if self._live(key) else "expired",
            "created": iso,
            "expires_at": (
                time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(expires)) if expires else None
            ),
            "ip_allowlist": [],
            "last_used": None,
            "livemode": False,
            "managed_by": None,
            "publishable_key": None,
            "secret_key": {"secret_token_redacted": key["secret"][:8] + "…" + key["secret"][-4:]},
        }

    def api_v2_keys(self, method: str, rest: list[str], p: dict[str, Any]) -> Any:
        if method == "GET" and not rest:
            return {
                "data": [self._key_view(k) for k in self.api_keys.values()],
                "next_page_url": None,
                "previous_page_url": None,
            }
        key = self.api_keys.get(rest[0]) if rest else None
        if key is None:
            raise StripeError(404, "invalid_request_error", "No such API key.", code="not_found")
        if method == "GET" and len(rest) == 1:
            return self._key_view(key)
        if method != "POST" or rest[1:] != ["rotate"]:
            raise StripeError(404, "invalid_request_error", "Unrecognized request URL.")
        if not self._live(key):
            raise StripeError(400, "invalid_request_error", "An expired API key cannot be rotated.")
        minutes = p.get("expire_current_key_in_minutes", 0)
        if isinstance(minutes, bool) or not isinstance(minutes, int):
            raise StripeError(
                400, "invalid_request_error", "expire_current_key_in_minutes must be an integer."
            )
        if not 0 <= minutes <= MAX_KEY_GRACE_MINUTES:
            raise StripeError(
                400,
                "invalid_request_error",
                "expire_current_key_in_minutes must be between 0 and 10080 (7 days).",
            )
        public = self._public_key(p.get("public_key"))
        secret = "sk_test_" + secrets.token_hex(24)
        new = {
            "id": "ak_" + secrets.token_hex(12),
            "name": key.get("name"),
            "secret": secret,
            "created": max(self.clock(), key["created"] + 1),
            "expires_at": None,
        }
        self.api_keys[new["id"]] = new
        key["expires_at"] = self.clock() + minutes * 60
        alg, enc = self.secret_sealing
        sealed = jwe.JWE(
            secret.encode(), protected={"alg": alg, "enc": enc, "kid": public[1] or "key"}
        )
        sealed.allowed_algs = [alg, enc]
        sealed.add_recipient(public[0])
        view = self._key_view(new)
        plain = {"token": secret} if self.plain_token else {}  # test-mode keys carry it too
        view["secret_key"] = {
            **view["secret_key"],
            **plain,
            "encrypted_secret": {
                "ciphertext": sealed.serialize(compact=True),
                "format": "jwe_compact",
                "recipient_key_id": public[1],
            },
        }
        return view

    @staticmethod
    def _public_key(value: Any) -> tuple[jwk.JWK, str | None]:
        pem = value.get("pem_key") if isinstance(value, dict) else None
        if not isinstance(pem, dict) or not isinstance(pem.get("data"), str):
            raise StripeError(
                400,
                "invalid_request_error",
                "A public_key with a pem_key is required to rotate a secret key.",
                param="public_key",
            )
        if pem.get("algorithm") != "RSA":
            raise StripeError(400, "invalid_request_error", "pem_key.algorithm must be RSA.")
        try:
            key = jwk.JWK.from_pem(pem["data"].encode())
        except (JWException, ValueError, TypeError):
            raise StripeError(
                400, "invalid_request_error", "pem_key.data is not a PEM public key."
            ) from None
        if key.get("kty") != "RSA" or key.has_private:
            raise StripeError(
                400, "invalid_request_error", "pem_key.data must be an RSA public key."
            )
        bits = len(base64_url_decode(key.get("n", ""))) * 8
        if bits < 2048:
            raise StripeError(
                400, "invalid_request_error", "The RSA key must be 2048 bits or more."
            )
        return key, (str(value["id"]) if value.get("id") else None)
