"""The base of every admin page in the product, ours and the third-party ones we register again.

Stock Django answers 500 when a list action is POSTed with a selection that is not a key of the
model (``_selected_action=abc`` on an integer key raises ``ValueError`` while the queryset is
filtered). A selection that does not parse is a mistake of the sender's: the list comes back
with a plain message and nothing is done.
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseRedirect

logger = logging.getLogger(__name__)

NOT_UNDERSTOOD = "The selection was not understood, so nothing was done. Tick the rows again."


def selection_parses(model_admin: admin.ModelAdmin, request: HttpRequest) -> bool:
    """Whether every ticked row of a list action's POST is a key of the admin's model."""
    pk_field = model_admin.model._meta.pk
    for raw in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME):
        try:
            value = pk_field.get_prep_value(pk_field.to_python(raw))
        except (ValidationError, ValueError, TypeError, OverflowError):
            return False
        if isinstance(value, int) and not -(2**63) <= value < 2**63:
            return False  # no database stores such a key (SQLite raises on it)
    return True


class SafeModelAdmin(admin.ModelAdmin):
    """A ModelAdmin whose list actions refuse a selection that does not parse (a message,
    never a 500)."""

    def response_action(self, request: HttpRequest, queryset: QuerySet[Any]) -> Any:
        if not selection_parses(self, request):
            logger.info("%s: a list action with an unparsable selection", self.opts.label)
            self.message_user(request, NOT_UNDERSTOOD, messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())
        return super().response_action(request, queryset)
