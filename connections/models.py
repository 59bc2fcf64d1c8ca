"""Connections to external systems, their OAuth tokens and the shared rate-limit buckets."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import models

from connections import jsonsafe, systems
from connections.fields import EncryptedJSONField, EncryptedTextField

if TYPE_CHECKING:
    from connections.providers.base import Provider
    from connections.providers.spec import ConnectionSpec

logger = logging.getLogger(__name__)


def connection_kinds() -> list[tuple[str, str]]:
    """The kinds of connection: one per registered system (read when needed, so adding a system
    needs no migration)."""
    return systems.kind_choices()


class Connection(models.Model):
    """One external system account: who we are there (encrypted) and how to reach it."""

    class Status(models.TextChoices):
        UNTESTED = "untested", "Not tested"
        OK = "ok", "OK"
        FAILING = "failing", "Failing"

    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=80, unique=True)
    kind = models.CharField(max_length=20, choices=connection_kinds)
    credentials = EncryptedJSONField(default=dict, editable=False)
    settings = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.UNTESTED)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_check_message = models.TextField(blank=True)
    # From real use (``connections.usage``): the last call that worked, the last that could not
    # reach or use the system, and why.
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_failed_at = models.DateTimeField(null=True, blank=True)
    last_failure = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def provider_class(self) -> type[Provider]:
        """The registered client class of this connection's system (``LookupError`` if none)."""
        return systems.provider_class(self.kind)

    @property
    def spec(self) -> ConnectionSpec:
        return self.provider_class.spec

    def clean(self) -> None:
        try:
            self.provider_class  # noqa: B018  (raises for a kind with no client)
        except LookupError:
            raise ValidationError({"kind": "ml-connector has no client for this system."}) from None
        errors: list[str] = []
        try:
            self.settings = self.spec.clean_settings(self.settings or {})
        except ValidationError as exc:
            errors += exc.messages
        if reason := jsonsafe.problem(self.settings):
            errors.append(f"These settings cannot be stored: {reason}.")
        if self.credentials is not None:  # None: the form already reported unusable credentials
            try:
                self.credentials = self.spec.clean_credentials(self.credentials)
            except ValidationError as exc:
                errors += exc.messages
        if errors:
            raise ValidationError(errors)

    def setting(self, name: str, default: Any = None) -> Any:
        """A setting, falling back to the system's default."""
        if name in (self.settings or {}):
            return self.settings[name]
        spec_default = self.spec.default(name)
        return spec_default if spec_default is not None else default

    def secret_values(self) -> list[str]:
        """Every secret credential value (and any unknown one): what redaction must mask."""
        try:
            public = self.spec.public_credentials()
        except LookupError:
            public = frozenset()
        return [str(v) for k, v in (self.credentials or {}).items() if k not in public]


class OAuthToken(models.Model):
    """The current OAuth access (and refresh) token of a connection, encrypted at rest.

    One row per connection; the row is the lock that lets exactly one worker refresh at a time.
    """

    connection = models.OneToOneField(
        Connection, on_delete=models.CASCADE, related_name="oauth_token"
    )
    access_token = EncryptedTextField(blank=True, default="")
    refresh_token = EncryptedTextField(blank=True, default="")
    token_type = models.CharField(max_length=20, default="Bearer")
    expires_at = models.DateTimeField(null=True, blank=True)
    obtained_at = models.DateTimeField(null=True, blank=True)
    lifetime_seconds = models.PositiveIntegerField(null=True, blank=True)
    refresh_count = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "OAuth token"

    def __str__(self) -> str:
        return f"Token for {self.connection}"


class RateLimitBucket(models.Model):
    """Database-backed rate-limit state (GCRA): the theoretical arrival time of the next request.

    Used when no Redis is configured; every worker of the deployment shares it.
    """

    key = models.CharField(max_length=200, unique=True)
    tat = models.FloatField(default=0.0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.key


class KeyRotation(models.Model):
    """One rotation of a connection's API key: asked for, then finished or failed.

    While it is pending it holds the one-off private key the new secret is encrypted to
    (encrypted at rest) and the idempotency key of the request, so a rotation whose answer was
    lost is asked for again — the same rotation, not a second one — and its secret still read.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Under way"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    connection = models.ForeignKey(
        Connection, on_delete=models.CASCADE, related_name="key_rotations"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    requested_by = models.CharField(max_length=150, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    old_key_id = models.CharField(max_length=100, blank=True)
    new_key_id = models.CharField(max_length=100, blank=True)
    old_key_expires_at = models.DateTimeField(null=True, blank=True)
    grace_minutes = models.PositiveIntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0)
    idempotency_key = models.CharField(max_length=64, editable=False)
    private_key = EncryptedTextField(blank=True, default="", editable=False)
    message = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["connection"],
                condition=models.Q(status="pending"),
                name="one_pending_key_rotation_per_connection",
            )
        ]

    def __str__(self) -> str:
        return f"Key rotation of {self.connection} ({self.get_status_display()})"
