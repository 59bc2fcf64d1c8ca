"""Connections to external systems, their OAuth tokens and the shared rate-limit buckets."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models

from connections.fields import EncryptedJSONField, EncryptedTextField
from connections.kinds import KINDS, KindSpec

logger = logging.getLogger(__name__)


class Connection(models.Model):
    """One external system account: who we are there (encrypted) and how to reach it."""

    class Kind(models.TextChoices):
        INFOR_M3 = "infor_m3", "Infor CloudSuite (M3)"
        IFS_CLOUD = "ifs_cloud", "IFS Cloud"
        STRIPE = "stripe", "Stripe"
        CIN7 = "cin7", "Cin7 Core"
        WISE = "wise", "Wise"
        STAMPLI_SFTP = "stampli_sftp", "Stampli (SFTP)"

    class Status(models.TextChoices):
        UNTESTED = "untested", "Not tested"
        OK = "ok", "OK"
        FAILING = "failing", "Failing"

    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=80, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    credentials = EncryptedJSONField(default=dict, editable=False)
    settings = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.UNTESTED)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_check_message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def spec(self) -> KindSpec:
        return KINDS[self.kind]

    def clean(self) -> None:
        if self.kind not in KINDS:
            raise ValidationError({"kind": "Unknown kind of connection."})
        errors: list[str] = []
        try:
            self.settings = self.spec.clean_settings(self.settings or {})
        except ValidationError as exc:
            errors += exc.messages
        if self.credentials is not None:  # None: the form already reported unusable credentials
            try:
                self.credentials = self.spec.clean_credentials(self.credentials)
            except ValidationError as exc:
                errors += exc.messages
        if errors:
            raise ValidationError(errors)

    def setting(self, name: str, default: Any = None) -> Any:
        """A setting, falling back to the kind's default."""
        if name in (self.settings or {}):
            return self.settings[name]
        for spec in self.spec.settings:
            if spec.name == name and spec.default is not None:
                return spec.default
        return default

    def secret_values(self) -> list[str]:
        """Every secret credential value (and any unknown one): what redaction must mask."""
        public = {f.name for f in self.spec.credentials if not f.secret}
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
