"""App configuration for connections."""

import logging

from django.apps import AppConfig

logger = logging.getLogger(__name__)


class ConnectionsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "connections"
    verbose_name = "Connections"

    def ready(self) -> None:
        # Registers every system (kinds, forms, secret shapes) before anything looks them up.
        from connections.providers import registry  # noqa: F401
