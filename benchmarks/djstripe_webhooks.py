"""dj-stripe's webhook view on the events ``make bench`` sends to ours, for a side-by-side figure.

Run by ``benchmarks/invoice_flow.py`` with the Python of the benchmark's own environment, the
only place dj-stripe is installed (``make bench`` builds it in ``var/bench-djstripe``):
``python benchmarks/djstripe_webhooks.py EVENTS.json`` prints events per second.  dj-stripe
verifies the signature, stores a ``WebhookEventTrigger`` and hands it to
``DJSTRIPE_WEBHOOK_EVENT_CALLBACK`` (a no-op here, as our view hands its event to a worker), so
both views do the same work: verify, store, acknowledge.  Same SQLite settings as ours.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import django
from django.conf import settings
from django.urls import include, path

urlpatterns: list[Any] = []  # filled once settings exist (this module is the URLconf)


def hand_off(trigger: Any, api_key: str | None = None) -> None:
    """What our view does with a stored event (queue it for a worker) costs about this much."""


def main() -> None:
    events = json.loads(Path(sys.argv[1]).read_text())
    database = Path(tempfile.mkdtemp(prefix="djstripe-bench-")) / "db.sqlite3"
    settings.configure(
        DEBUG=False,
        SECRET_KEY="benchmark-only-not-a-secret",  # noqa: S106
        ALLOWED_HOSTS=["localhost"],
        ROOT_URLCONF="__main__",
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "djstripe",
        ],
        MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": str(database),
                "OPTIONS": {
                    "timeout": 30,
                    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                },
            }
        },
        USE_TZ=True,
        STRIPE_LIVE_MODE=False,
        STRIPE_TEST_SECRET_KEY="sk_test_" + "0" * 24,
        DJSTRIPE_FOREIGN_KEY_TO_FIELD="id",
        DJSTRIPE_WEBHOOK_EVENT_CALLBACK="__main__.hand_off",
        LOGGING={"version": 1, "disable_existing_loggers": True},
    )
    django.setup()
    urlpatterns.append(path("stripe/", include("djstripe.urls", namespace="djstripe")))
    from django.core.management import call_command
    from django.test import Client
    from djstripe.models import WebhookEndpoint

    call_command("migrate", verbosity=0)
    endpoint = WebhookEndpoint.objects.create(
        id="we_benchmark",
        livemode=False,
        secret=events["secret"],
        url="https://localhost/stripe/",
        enabled_events=["*"],
        status="enabled",
        api_version="2024-06-20",
        djstripe_validation_method="verify_signature",
    )
    url = f"/stripe/webhook/{endpoint.djstripe_uuid}/"
    client = Client(HTTP_HOST="localhost")
    bodies = events["bodies"]
    signatures = events["signatures"]
    started = time.perf_counter()
    for body, signature in zip(bodies, signatures, strict=True):
        response = client.post(
            url, body, content_type="application/json", HTTP_STRIPE_SIGNATURE=signature
        )
        if response.status_code != 200:
            raise SystemExit(f"dj-stripe answered {response.status_code}: {response.content!r}")
    print(f"{len(bodies) / (time.perf_counter() - started):.0f}")


if __name__ == "__main__":
    main()
