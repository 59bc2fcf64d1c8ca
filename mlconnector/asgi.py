"""ASGI entry point."""

import logging
import os

from django.core.asgi import get_asgi_application

logger = logging.getLogger(__name__)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlconnector.settings")
application = get_asgi_application()
