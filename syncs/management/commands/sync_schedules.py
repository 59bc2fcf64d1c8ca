"""``manage.py sync_schedules``: bring every integration's django-q2 schedule in step."""

from __future__ import annotations

import logging
from typing import Any

from django.core.management.base import BaseCommand

from syncs.services import schedules_reconcile

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Create, update or remove the django-q2 schedules of all integrations."

    def handle(self, *args: Any, **options: Any) -> None:
        count = schedules_reconcile()
        self.stdout.write(self.style.SUCCESS(f"Schedules in step for {count} integration(s)."))
