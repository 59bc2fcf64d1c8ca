"""What each kind of connection needs: its credential fields (secret) and settings (not secret).

One explicit registry (``KINDS``).  The admin builds its forms from these specs, and
``Connection.clean()`` validates against them, so a connection can never be saved with
credentials its client cannot use.  An Infor connection's credentials are its ``.ionapi`` file.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from django.core.exceptions import ValidationError

logger = logging.getLogger(__name__)


def _url(value: Any) -> str:
    value = str(value).strip()
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValidationError(f"“{value}” is not an http(s) URL.")
    return value


def _positive_int(value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValidationError(f"“{value}” is not a whole number.") from None
    if number <= 0:
        raise ValidationError("Must be greater than zero.")
    return number


def _positive_float(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValidationError(f"“{value}” is not a number.") from None
    if number <= 0:
        raise ValidationError("Must be greater than zero.")
    return number


def _text(value: Any) -> str:
    if not isinstance(value, str | int):
        raise ValidationError("Must be text.")
    return str(value).strip()


@dataclass(frozen=True)
class FieldSpec:
    """One credential or setting: how it is labelled, whether it is secret, how it is checked."""

    name: str
    label: str
    secret: bool = True
    required: bool = True
    help: str = ""
    default: Any = None
    clean: Callable[[Any], Any] = _text
    multiline: bool = False


def _common_settings(rate_per_minute: int, base_url: str | None = None) -> tuple[FieldSpec, ...]:
    specs = []
    if base_url is not None:
        specs.append(
            FieldSpec(
                "base_url",
                "Base URL",
                secret=False,
                default=base_url,
                clean=_url,
                help="Point this at a sandbox simulator or at the real tenant.",
            )
        )
    specs += [
        FieldSpec(
            "rate_limit_per_minute",
            "Rate limit (requests per minute)",
            secret=False,
            default=rate_per_minute,
            clean=_positive_int,
            help="Shared by every worker of this deployment.",
        ),
        FieldSpec(
            "rate_limit_burst",
            "Rate limit burst",
            secret=False,
            default=10,
            clean=_positive_int,
            help="Requests allowed back to back before pacing starts.",
        ),
        FieldSpec(
            "connect_timeout",
            "Connect timeout (s)",
            secret=False,
            default=5.0,
            clean=_positive_float,
        ),
        FieldSpec(
            "read_timeout", "Read timeout (s)", secret=False, default=30.0, clean=_positive_float
        ),
        FieldSpec(
            "max_attempts",
            "Attempts per request",
            secret=False,
            default=5,
            clean=_positive_int,
            help="Retries on 429, 502-504 and connection errors.",
        ),
        FieldSpec(
            "max_retry_seconds",
            "Retry time budget (s)",
            secret=False,
            default=120.0,
            clean=_positive_float,
        ),
    ]
    return tuple(specs)


@dataclass(frozen=True)
class KindSpec:
    """The credential and settings schema of one kind of connection."""

    kind: str
    label: str
    credentials: tuple[FieldSpec, ...]
    settings: tuple[FieldSpec, ...]
    uses_ionapi: bool = False
    allow_extra_credentials: bool = False
    check_credentials: Callable[[dict[str, str]], None] | None = None
    defaults: dict[str, Any] = field(default_factory=dict)

    def clean_credentials(self, creds: Mapping[str, Any]) -> dict[str, str]:
        """Validate credentials; raise ``ValidationError`` naming every problem at once."""
        if not isinstance(creds, Mapping):
            raise ValidationError("Credentials must be a set of named values.")
        errors: list[str] = []
        cleaned: dict[str, str] = {}
        known = {f.name for f in self.credentials}
        for spec in self.credentials:
            value = creds.get(spec.name)
            if value in (None, ""):
                if spec.required:
                    errors.append(f"{spec.label} ({spec.name}) is required.")
                continue
            try:
                cleaned[spec.name] = spec.clean(value)
            except ValidationError as exc:
                errors.append(f"{spec.label} ({spec.name}): {' '.join(exc.messages)}")
        extra = sorted(set(creds) - known)
        if extra and not self.allow_extra_credentials:
            errors.append(f"Unknown credential fields: {', '.join(extra)}.")
        elif extra:
            cleaned.update({k: str(creds[k]) for k in extra if isinstance(creds[k], str | int)})
        if not errors and self.check_credentials:
            try:
                self.check_credentials(cleaned)
            except ValidationError as exc:
                errors.extend(exc.messages)
        if errors:
            raise ValidationError(errors)
        return cleaned

    def clean_settings(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Validate settings and fill in defaults; unknown keys are kept (flows read them)."""
        if not isinstance(values, Mapping):
            raise ValidationError("Settings must be a JSON object.")
        errors: list[str] = []
        cleaned = dict(values)
        for spec in self.settings:
            value = values.get(spec.name)
            if value in (None, ""):
                if spec.default is not None:
                    cleaned[spec.name] = spec.default
                elif spec.required:
                    errors.append(f"{spec.label} ({spec.name}) is required.")
                else:
                    cleaned.pop(spec.name, None)
                continue
            try:
                cleaned[spec.name] = spec.clean(value)
            except ValidationError as exc:
                errors.append(f"{spec.label} ({spec.name}): {' '.join(exc.messages)}")
        if errors:
            raise ValidationError(errors)
        return cleaned

    def default_settings(self) -> dict[str, Any]:
        """Settings a new connection of this kind starts with."""
        return {s.name: s.default for s in self.settings if s.default is not None}


def _programs(value: Any) -> dict[str, str]:
    """``need = PROGRAM/TRANSACTION`` lines (or a JSON object) → {need: "PROGRAM/TRANSACTION"}."""
    if isinstance(value, dict):
        items = list(value.items())
    else:
        items = []
        for line in str(value).splitlines():
            if line.strip():
                need, sep, target = line.partition("=")
                if not sep:
                    raise ValidationError(f"“{line.strip()}”: write need = PROGRAM/TRANSACTION.")
                items.append((need, target))
    from connections.providers.infor_m3 import DEFAULT_PROGRAMS  # (the provider owns them)

    cleaned = {}
    for need, target in items:
        if need.strip() not in DEFAULT_PROGRAMS:
            raise ValidationError(
                f"“{need.strip()}” is not something ml-connector calls; "
                f"known: {', '.join(sorted(DEFAULT_PROGRAMS))}."
            )
        program, sep, transaction = str(target).strip().partition("/")
        if not sep or not program.strip() or not transaction.strip():
            raise ValidationError(
                f"“{need.strip()}”: write PROGRAM/TRANSACTION, e.g. ARS040MI/AddBatchHead."
            )
        cleaned[need.strip()] = f"{program.strip().upper()}/{transaction.strip()}"
    return cleaned


def _stripe_key(value: Any) -> str:
    value = _text(value)
    if not value.startswith(("sk_", "rk_")):
        raise ValidationError(
            "A Stripe secret key starts with sk_ or rk_ (never a publishable pk_)."
        )
    return value


def _whsec(value: Any) -> str:
    value = _text(value)
    if not value.startswith("whsec_"):
        raise ValidationError("A Stripe webhook signing secret starts with whsec_.")
    return value


def _pem_public_key(value: Any) -> str:
    value = _text(value)
    if "BEGIN PUBLIC KEY" not in value:
        raise ValidationError("Paste the PEM public key (-----BEGIN PUBLIC KEY----- …).")
    return value


def _wise_check(creds: dict[str, str]) -> None:
    if not creds.get("api_token") and not (creds.get("client_id") and creds.get("client_secret")):
        raise ValidationError("Give either an API token, or an OAuth client id and secret.")


def _sftp_check(creds: dict[str, str]) -> None:
    if not creds.get("password") and not creds.get("private_key"):
        raise ValidationError("Give either a password or a private key.")


# The keys of an .ionapi file (see contracts): which are secret and which are required.
IONAPI_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("ti", "Tenant", secret=False),
    FieldSpec("cn", "Application name", secret=False, required=False),
    FieldSpec("ci", "Client id"),
    FieldSpec("cs", "Client secret"),
    FieldSpec("iu", "ION API gateway URL", secret=False, clean=_url),
    FieldSpec("pu", "Authorization server URL", secret=False, clean=_url),
    FieldSpec("oa", "Authorize path", secret=False, required=False),
    FieldSpec("ot", "Token path", secret=False),
    FieldSpec("or", "Revoke path", secret=False, required=False),
    FieldSpec("saak", "Service account access key"),
    FieldSpec("sask", "Service account secret key"),
)

KINDS: dict[str, KindSpec] = {
    spec.kind: spec
    for spec in (
        KindSpec(
            "infor_m3",
            "Infor CloudSuite (M3)",
            credentials=IONAPI_FIELDS,
            uses_ionapi=True,
            allow_extra_credentials=True,  # dt, ev, v: present in real files, meaning unverified
            settings=(
                FieldSpec("cono", "Company (CONO)", secret=False, default=100, clean=_positive_int),
                FieldSpec(
                    "divi",
                    "Division (DIVI)",
                    secret=False,
                    required=False,
                    help="Leave blank for company-level programs.",
                ),
                FieldSpec(
                    "programs",
                    "Program overrides",
                    secret=False,
                    required=False,
                    clean=_programs,
                    multiline=True,
                    help="Only where this tenant differs from the M3 catalogue, one per line: "
                    "need = PROGRAM/TRANSACTION (e.g. receipts.head = ARS040MI/AddBatchHead). "
                    "Needs: customers.list, customers.get, accounts.list, invoices.list, "
                    "invoices.get, receipts.head, receipts.line, receipts.charge, "
                    "receipts.control, discovery.transactions.",
                ),
                *_common_settings(rate_per_minute=300),
            ),
        ),
        KindSpec(
            "ifs_cloud",
            "IFS Cloud",
            credentials=(
                FieldSpec("client_id", "Client id"),
                FieldSpec("client_secret", "Client secret"),
            ),
            settings=(
                *_common_settings(rate_per_minute=1000, base_url="https://ifs.example.com"),
                FieldSpec(
                    "token_url",
                    "Token URL",
                    secret=False,
                    clean=_url,
                    help="https://{host}/auth/realms/{namespace}/protocol/openid-connect/token",
                ),
                FieldSpec("scope", "Scope", secret=False, default="openid microprofile-jwt"),
            ),
        ),
        KindSpec(
            "stripe",
            "Stripe",
            credentials=(
                FieldSpec("api_key", "Secret key", clean=_stripe_key),
                FieldSpec("webhook_secret", "Webhook signing secret", required=False, clean=_whsec),
            ),
            settings=_common_settings(rate_per_minute=1500, base_url="https://api.stripe.com"),
        ),
        KindSpec(
            "cin7",
            "Cin7 Core",
            credentials=(
                FieldSpec("account_id", "Account id"),
                FieldSpec("application_key", "Application key"),
            ),
            settings=_common_settings(
                rate_per_minute=60, base_url="https://inventory.dearsystems.com/ExternalApi/v2/"
            ),
        ),
        KindSpec(
            "wise",
            "Wise",
            credentials=(
                FieldSpec("api_token", "API token", required=False),
                FieldSpec("client_id", "OAuth client id", required=False),
                FieldSpec("client_secret", "OAuth client secret", required=False),
            ),
            check_credentials=_wise_check,
            settings=(
                *_common_settings(rate_per_minute=6000, base_url="https://api.wise.com"),
                FieldSpec(
                    "profile_id", "Profile id", secret=False, required=False, clean=_positive_int
                ),
                FieldSpec(
                    "webhook_public_key",
                    "Webhook public key (PEM)",
                    secret=False,
                    required=False,
                    clean=_pem_public_key,
                    multiline=True,
                ),
            ),
        ),
        KindSpec(
            "stampli_sftp",
            "Stampli (SFTP)",
            credentials=(
                FieldSpec("password", "Password", required=False),
                FieldSpec("private_key", "Private key (PEM)", required=False, multiline=True),
                FieldSpec("private_key_passphrase", "Private key passphrase", required=False),
            ),
            check_credentials=_sftp_check,
            settings=(
                FieldSpec("host", "Host", secret=False),
                FieldSpec("port", "Port", secret=False, default=22, clean=_positive_int),
                FieldSpec("username", "Username", secret=False),
                FieldSpec(
                    "host_key",
                    "Host key (known_hosts line)",
                    secret=False,
                    required=False,
                    help="The server's public key; connections are refused if it differs.",
                ),
                FieldSpec("remote_dir", "Outbound directory", secret=False, default="/outbound"),
                FieldSpec("archive_dir", "Archive directory", secret=False, required=False),
                FieldSpec(
                    "connect_timeout",
                    "Connect timeout (s)",
                    secret=False,
                    default=10.0,
                    clean=_positive_float,
                ),
            ),
        ),
    )
}


def kind_spec(kind: str) -> KindSpec:
    """The spec of ``kind``; ``KeyError`` for an unknown kind."""
    return KINDS[kind]
