"""App configuration for syncs."""

import logging

from django.apps import AppConfig

logger = logging.getLogger(__name__)


class SyncsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "syncs"
    verbose_name = "Integrations"

    def ready(self) -> None:
        from syncs import signals  # noqa: F401  keeps django-q2 schedules in step with integrations
