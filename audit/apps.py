"""App configuration for audit."""

import logging

from django.apps import AppConfig

logger = logging.getLogger(__name__)


class AuditConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "audit"
    verbose_name = "Audit"
