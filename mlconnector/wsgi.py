"""WSGI entry point (gunicorn mlconnector.wsgi)."""

import logging
import os

from django.core.wsgi import get_wsgi_application

logger = logging.getLogger(__name__)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlconnector.settings")
application = get_wsgi_application()
