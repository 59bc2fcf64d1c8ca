"""URL routes: the admin (the product's UI) and inbound webhooks."""

from __future__ import annotations

import logging

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.generic import RedirectView

from syncs.webhooks import webhook

logger = logging.getLogger(__name__)

admin.site.site_header = "ml-connector"
admin.site.site_title = "ml-connector"
admin.site.index_title = "Finance integrations"
# The page's width goes to the lists' columns; the overview (home) lists every page instead.
admin.site.enable_nav_sidebar = False


def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness probe for load balancers: answers without touching the database."""
    return HttpResponse("ok", content_type="text/plain")


urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("webhooks/<slug:system>/<slug:slug>/", webhook, name="webhook"),
]
