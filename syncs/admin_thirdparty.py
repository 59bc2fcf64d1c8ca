"""django-q2's, django-axes' and Django's own (users, groups) admin pages, registered again
on our terms.

Their stock actions declare no permission, so anyone who may *view* the list could run them:
django-q2's "Resubmit selected tasks to queue" runs an integration or a replay again, and
django-axes' "Clean up expired attempts" deletes rows (and answers 500: it reads an attribute
only axes' own middleware sets on a login request). Here each action declares the permission
it needs — resubmitting is the model's *change* permission, given to the Integration admin
group; clearing attempts is *delete*, which that group already holds — and each works. Every
page also refuses a list action whose selection does not parse (``SafeModelAdmin``).
"""

from __future__ import annotations

import logging
from typing import Any

from axes.admin import AccessAttemptAdmin, AccessFailureLogAdmin, AccessLogAdmin
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib import admin, messages
from django.contrib.auth import admin as auth_admin
from django.contrib.auth.models import Group, User
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django_q import admin as q_admin
from django_q.models import Failure, OrmQ, Schedule, Success

from connections.admin_base import SafeModelAdmin

logger = logging.getLogger(__name__)


class _ResubmitMixin:
    """Resubmit for those who hold the change permission of the task list (never a viewer)."""

    actions = ["resubmit"]

    def has_resubmit_permission(self, request: HttpRequest) -> bool:
        opts = self.model._meta  # type: ignore[attr-defined]
        return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")

    @admin.action(description="Resubmit selected tasks to queue", permissions=["resubmit"])
    def resubmit(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        count = queryset.count()
        q_admin.resubmit_task(self, request, queryset)
        self.message_user(  # type: ignore[attr-defined]
            request, f"Queued {count} task(s) again.", messages.SUCCESS
        )


class TaskAdmin(_ResubmitMixin, SafeModelAdmin, q_admin.TaskAdmin):
    pass


class FailAdmin(_ResubmitMixin, SafeModelAdmin, q_admin.FailAdmin):
    """A failed task queued again leaves this list (django-q2's own resubmit sees to it)."""


class ScheduleAdmin(SafeModelAdmin, q_admin.ScheduleAdmin):
    pass


class QueueAdmin(SafeModelAdmin, q_admin.QueueAdmin):
    pass


class AttemptAdmin(SafeModelAdmin, AccessAttemptAdmin):
    actions = ["cleanup_expired_attempts"]

    @admin.action(description="Clean up expired attempts", permissions=["delete"])
    def cleanup_expired_attempts(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        # axes' handler measures the cool-off from the time of a login attempt, which only its
        # middleware sets; from the admin it is now.
        request.axes_attempt_time = timezone.now()  # type: ignore[attr-defined]
        count = self.handler.clean_expired_user_attempts(request=request)
        self.message_user(request, f"Cleared {count} expired login attempt(s).", messages.SUCCESS)


class UserAdmin(SafeModelAdmin, auth_admin.UserAdmin):
    pass


class GroupAdmin(SafeModelAdmin, auth_admin.GroupAdmin):
    pass


class LogAdmin(SafeModelAdmin, AccessLogAdmin):
    pass


class FailureLogAdmin(SafeModelAdmin, AccessFailureLogAdmin):
    pass


REGISTERED = {
    User: UserAdmin,
    Group: GroupAdmin,
    Success: TaskAdmin,
    Failure: FailAdmin,
    Schedule: ScheduleAdmin,
    OrmQ: QueueAdmin,
    AccessAttempt: AttemptAdmin,
    AccessLog: LogAdmin,
    AccessFailureLog: FailureLogAdmin,
}
for model, model_admin in REGISTERED.items():
    if admin.site.is_registered(model):
        admin.site.unregister(model)
        admin.site.register(model, model_admin)
