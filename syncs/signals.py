"""Keeps each Integration's django-q2 Schedule in step with it, however it is saved or deleted."""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from syncs.models import Integration

logger = logging.getLogger(__name__)


@receiver(post_save, sender=Integration, dispatch_uid="integration_schedule_save")
def _integration_saved(sender: type, instance: Integration, raw: bool = False, **_: Any) -> None:
    if raw:  # loaddata
        return
    from syncs.services import integration_sync_schedule

    transaction.on_commit(lambda: integration_sync_schedule(integration=instance))


@receiver(post_delete, sender=Integration, dispatch_uid="integration_schedule_delete")
def _integration_deleted(sender: type, instance: Integration, **_: Any) -> None:
    if instance.q_schedule_id:
        from django_q.models import Schedule

        Schedule.objects.filter(pk=instance.q_schedule_id).delete()
