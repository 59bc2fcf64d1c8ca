"""What a system needs to be configured: its credential fields (secret) and settings (not secret).

Each provider package declares one ``ConnectionSpec``; the admin builds its forms from it and
``Connection.clean()`` validates against it, so a connection can never be saved with credentials
its client cannot use.  A system whose credentials come as a file (Infor's ``.ionapi``) declares
a ``CredentialsFile`` instead of typed-in credential fields.
"""

from __future__ import annotations

import difflib
import logging
import math
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from django.core.exceptions import ValidationError

logger = logging.getLogger(__name__)


def url(value: Any) -> str:
    """An http(s) URL."""
    value = text(value)
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValidationError(f"“{value[:200]}” is not an http(s) URL.")
    return value


def positive_int(value: Any) -> int:
    """A whole number above zero (``"5"`` and ``5`` alike; never ``5.5``, ``nan`` or ``inf``)."""
    if isinstance(value, bool):
        raise ValidationError("Must be a whole number.")
    if isinstance(value, float) and not value.is_integer():
        raise ValidationError(f"“{value}” is not a whole number.")
    try:
        number = int(str(value).strip()) if not isinstance(value, float) else int(value)
    except (TypeError, ValueError, OverflowError):
        raise ValidationError(f"“{str(value)[:40]}” is not a whole number.") from None
    if number <= 0:
        raise ValidationError("Must be greater than zero.")
    if number > 10**12:
        raise ValidationError("Is far too large.")
    return number


def positive_float(value: Any) -> float:
    """A finite number above zero."""
    if isinstance(value, bool):
        raise ValidationError("Must be a number.")
    try:
        number = float(str(value).strip())
    except (TypeError, ValueError, OverflowError):
        raise ValidationError(f"“{str(value)[:40]}” is not a number.") from None
    if not math.isfinite(number):
        raise ValidationError("Must be a finite number.")
    if number <= 0:
        raise ValidationError("Must be greater than zero.")
    return number


def text(value: Any) -> str:
    """Plain text: no control characters a database or a remote system would refuse."""
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise ValidationError("Must be text.")
    value = str(value).strip()
    if "\x00" in value:
        raise ValidationError("Must not contain NUL characters.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError("Must be valid text (it holds an unpaired surrogate).") from None
    return value


def whole_number(value: Any) -> int:
    """A whole number, zero or more."""
    if value in (0, "0") and not isinstance(value, bool):
        return 0
    return positive_int(value)


def choice(*values: str) -> Callable[[Any], str]:
    """One of ``values`` (compared without regard to case; the declared spelling is kept)."""

    def clean(value: Any) -> str:
        given = text(value)
        for allowed in values:
            if given.lower() == allowed.lower():
                return allowed
        raise ValidationError(f"“{given[:40]}” is not one of: {', '.join(values)}.")

    clean.choices = values  # type: ignore[attr-defined]  # the form offers them as a list
    return clean


def text_list(value: Any) -> list[str]:
    """Several short texts: a JSON list, or one per line (or separated by commas)."""
    if isinstance(value, list | tuple):
        items = [text(v) for v in value]
    else:
        items = [t.strip() for t in re.split(r"[,\n]", text(value))]
    items = [i for i in items if i]
    if len(items) > 200:
        raise ValidationError("At most 200 values.")
    return items


def text_map(
    *,
    known: Collection[str] | None = None,
    value_pattern: str = r"^[^\n]{1,200}$",
    shape: str = "name = value",
) -> Callable[[Any], dict[str, str]]:
    """``name = value`` lines (or a JSON object): ``known`` limits the names; each value must
    match ``value_pattern``; ``shape`` shows how a line is written (with an example)."""
    pattern = re.compile(value_pattern)

    def clean(value: Any) -> dict[str, str]:
        if isinstance(value, Mapping):
            pairs = [(str(k), v) for k, v in value.items()]
        else:
            pairs = []
            for line in text(value).splitlines():
                if not line.strip():
                    continue
                name, sep, target = line.partition("=")
                if not sep:
                    raise ValidationError(f"“{line.strip()[:80]}”: write {shape}.")
                pairs.append((name, target))
        cleaned: dict[str, str] = {}
        for name, target in pairs:
            name = name.strip()
            if not isinstance(target, str | int) or isinstance(target, bool):
                raise ValidationError(f"“{name[:80]}”: the value must be text.")
            target = str(target).strip()
            if known is not None and name not in known:
                raise ValidationError(
                    f"“{name[:80]}” is not something ml-connector reads; known: "
                    f"{', '.join(sorted(known))}."
                )
            if not pattern.match(target):
                raise ValidationError(f"“{name[:80]}”: write {shape}.")
            cleaned[name] = target
        return cleaned

    return clean


def template(*placeholders: str) -> Callable[[Any], str]:
    """Text in which ``{name}`` may name only ``placeholders`` (filled in when it is used)."""

    def clean(value: Any) -> str:
        value = text(value)
        used = set(re.findall(r"{([^{}]*)}", value))
        unknown = sorted(used - set(placeholders))
        if unknown:
            allowed = ", ".join("{" + p + "}" for p in placeholders) or "none"
            raise ValidationError(
                f"{', '.join('{' + u + '}' for u in unknown)} cannot be filled in here "
                f"(it may use: {allowed})."
            )
        try:
            value.format(**{p: "x" for p in placeholders})
        except (ValueError, IndexError, KeyError):
            raise ValidationError("Unbalanced { or } (write {{ or }} for a brace).") from None
        return value

    return clean


@dataclass(frozen=True)
class FieldSpec:
    """One credential or setting: how it is labelled, whether it is secret, how it is checked."""

    name: str
    label: str
    secret: bool = True
    required: bool = True
    help: str = ""
    default: Any = None
    clean: Callable[[Any], Any] = text
    multiline: bool = False

    @property
    def choices(self) -> tuple[str, ...]:
        """The values it may take, when it is a choice."""
        return tuple(getattr(self.clean, "choices", ()))


def as_text(value: Any) -> str:
    """A setting's value as a form field shows it: a list one per line, a map as ``name = value``
    lines (what ``text_list`` and ``text_map`` read back)."""
    if isinstance(value, Mapping):
        return "\n".join(f"{k} = {v}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return "\n".join(str(v) for v in value)
    return "" if value is None else str(value)


def clean_declared(
    specs: Iterable[FieldSpec],
    values: Mapping[str, Any],
    *,
    unknown: str = "keep",
    fill_defaults: bool = True,
) -> dict[str, Any]:
    """``values`` checked against ``specs``; ``ValidationError`` naming every problem at once.

    ``unknown``: ``"keep"`` keeps names no spec declares, ``"refuse"`` makes each an error (a
    typo is never silently ignored).  ``fill_defaults``: a blank value becomes its default
    (otherwise it is left out, so a later change of the default applies)."""
    if not isinstance(values, Mapping):
        raise ValidationError("Settings must be a JSON object.")
    specs = tuple(specs)
    declared = {s.name: s for s in specs}
    errors: list[str] = []
    cleaned = dict(values) if unknown == "keep" else {}
    if unknown != "keep":
        for name in sorted(set(values) - set(declared), key=str):
            close = difflib.get_close_matches(str(name), list(declared), n=1)
            hint = f" Did you mean “{close[0]}”?" if close else ""
            known = ", ".join(sorted(declared)) or "none"
            errors.append(f"“{str(name)[:60]}” is not a setting here.{hint} (Known: {known}.)")
    for spec in specs:
        value = values.get(spec.name)
        if value in (None, ""):
            cleaned.pop(spec.name, None)
            if spec.default is not None and fill_defaults:
                cleaned[spec.name] = spec.default
            elif spec.required and spec.default is None:
                errors.append(f"{spec.label} ({spec.name}) is required.")
            continue
        try:
            cleaned[spec.name] = spec.clean(value)
        except ValidationError as exc:
            errors.append(f"{spec.label} ({spec.name}): {' '.join(exc.messages)}")
    if errors:
        raise ValidationError(errors)
    return cleaned


@dataclass(frozen=True)
class CredentialsFile:
    """Credentials uploaded as one file (an ``.ionapi``): ``parse`` raises ``ValueError`` with a
    message safe to show, or returns the credential values."""

    label: str
    help: str
    parse: Callable[[bytes], dict[str, str]]


@dataclass(frozen=True)
class ConnectionSpec:
    """The credential and settings schema of one system."""

    credentials: tuple[FieldSpec, ...]
    settings: tuple[FieldSpec, ...]
    credentials_file: CredentialsFile | None = None
    allow_extra_credentials: bool = False
    check_credentials: Callable[[dict[str, str]], None] | None = None
    check_settings: Callable[[dict[str, Any]], None] | None = None  # settings that go together

    def clean_credentials(self, creds: Mapping[str, Any]) -> dict[str, str]:
        """Validate credentials; raise ``ValidationError`` naming every problem at once."""
        if not isinstance(creds, Mapping):
            raise ValidationError("Credentials must be a set of named values.")
        errors: list[str] = []
        known = {f.name for f in self.credentials}
        try:
            cleaned = clean_declared(
                self.credentials,
                {k: v for k, v in creds.items() if k in known},
                fill_defaults=False,
            )
        except ValidationError as exc:
            errors.extend(exc.messages)
            cleaned = {}
        extra = sorted(set(creds) - known)
        if extra and not self.allow_extra_credentials:
            errors.append(f"Unknown credential fields: {', '.join(extra)}.")
        elif extra:
            for key in extra:
                try:
                    cleaned[key] = text(creds[key])
                except ValidationError:
                    continue  # unknown extras we cannot store as text are dropped, not fatal
        if not errors and self.check_credentials:
            try:
                self.check_credentials(cleaned)
            except ValidationError as exc:
                errors.extend(exc.messages)
        if errors:
            raise ValidationError(errors)
        return cleaned

    def clean_settings(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Validate settings and fill in defaults; unknown keys are kept (a connection may hold
        what an earlier version wrote)."""
        errors: list[str] = []
        try:
            cleaned = clean_declared(self.settings, values)
        except ValidationError as exc:
            errors.extend(exc.messages)
            cleaned = {}
        if not errors and self.check_settings:
            try:
                self.check_settings(cleaned)
            except ValidationError as exc:
                errors.extend(exc.messages)
        if errors:
            raise ValidationError(errors)
        return cleaned

    def default(self, name: str) -> Any:
        """The default of setting ``name`` (None when it has none)."""
        return next((s.default for s in self.settings if s.name == name), None)

    def public_credentials(self) -> frozenset[str]:
        """Credential names that are not secret (an .ionapi's tenant and URLs)."""
        return frozenset(f.name for f in self.credentials if not f.secret)


def patience_settings(
    *, connect_timeout: float, attempts: int, attempts_label: str, attempts_help: str
) -> tuple[FieldSpec, ...]:
    """How long to wait for a system and how often to try: every transport has these."""
    return (
        FieldSpec(
            "connect_timeout",
            "Connect timeout (s)",
            secret=False,
            default=connect_timeout,
            clean=positive_float,
        ),
        FieldSpec(
            "read_timeout", "Read timeout (s)", secret=False, default=30.0, clean=positive_float
        ),
        FieldSpec(
            "max_attempts",
            attempts_label,
            secret=False,
            default=attempts,
            clean=positive_int,
            help=attempts_help,
        ),
    )


def http_settings(
    *,
    rate_per_minute: int | None,
    base_url: str | None = None,
    burst: int = 10,
    rate_help: str = "",
) -> tuple[FieldSpec, ...]:
    """The settings every HTTP system shares: base URL, shared rate limit, timeouts, retries.
    ``rate_help`` says where the system's default rate comes from."""
    specs = []
    if base_url is not None:
        specs.append(
            FieldSpec(
                "base_url",
                "Base URL",
                secret=False,
                default=base_url,
                clean=url,
                help="Point this at a sandbox simulator or at the real tenant.",
            )
        )
    specs += [
        FieldSpec(
            "rate_limit_per_minute",
            "Rate limit (requests per minute)",
            secret=False,
            required=rate_per_minute is not None,  # None: the system works it out (blank)
            default=rate_per_minute,
            clean=positive_int,
            help=" ".join(filter(None, ["Shared by every worker of this deployment.", rate_help])),
        ),
        FieldSpec(
            "rate_limit_burst",
            "Rate limit burst",
            secret=False,
            default=burst,
            clean=positive_int,
            help="Requests allowed back to back before pacing starts.",
        ),
        FieldSpec(
            "max_in_flight",
            "Records in flight",
            secret=False,
            required=False,
            clean=positive_int,
            help="How many records a run sends to this system at once (blank: the "
            "deployment's default, 16). The rate limit still sets the pace.",
        ),
        *patience_settings(
            connect_timeout=5.0,
            attempts=5,
            attempts_label="Attempts per request",
            attempts_help="Retries on 429, 502-504 and connection errors.",
        ),
        FieldSpec(
            "max_retry_seconds",
            "Retry time budget (s)",
            secret=False,
            default=120.0,
            clean=positive_float,
        ),
    ]
    return tuple(specs)
