"""ml-connector: the Django project package (settings, URLs, WSGI/ASGI, logging helpers)."""
