"""App configuration for connections."""

import logging

from django.apps import AppConfig

logger = logging.getLogger(__name__)


class ConnectionsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "connections"
    verbose_name = "Connections"
