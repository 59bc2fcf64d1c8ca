"""Admin building blocks shared by the integration and audit pages."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from connections.admin_base import SafeModelAdmin

logger = logging.getLogger(__name__)


class ReadOnlyAdmin(SafeModelAdmin):
    """History is never edited by hand.

    Acting on history — replaying a record, dismissing it, processing an event again — is the
    ``work`` permission: a user who holds the model's Django "change" permission (given by a
    group) may do it, though no one may edit the rows themselves.
    """

    def has_work_permission(self, request: HttpRequest) -> bool:
        opts = self.model._meta
        return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class DefaultFirstFilter(admin.SimpleListFilter):
    """A list filter whose unfiltered choice is a view of its own (``default_label``): the
    quiet list a finance user wants by default, the other lookups on request."""

    default_label = "Default"

    def choices(self, changelist: Any) -> Any:
        yield {
            "selected": self.value() is None,
            "query_string": changelist.get_query_string(remove=[self.parameter_name]),
            "display": self.default_label,
        }
        for lookup, title in self.lookup_choices:
            yield {
                "selected": self.value() == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }
