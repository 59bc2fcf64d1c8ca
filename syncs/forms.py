"""Forms a finance user fills in: a field mapping (in the admin and, row by row, in a CSV
import), checked against the target system where it can be."""

from __future__ import annotations

import logging
from typing import Any

from django import forms
from django.utils.html import format_html, format_html_join

from connections.models import Connection
from syncs.flows import mapping_kind_choices
from syncs.mappings import (
    mapping_kind_help,
    mapping_kind_problem,
    mapping_source_problem,
    mapping_target_problem,
    readers,
)
from syncs.models import FieldMapping, Integration

logger = logging.getLogger(__name__)


class FieldMappingForm(forms.ModelForm):
    class Meta:
        model = FieldMapping
        fields = ["integration", "connection", "kind", "source_value", "target_value", "note"]

    def __init__(self, *args: Any, charts: dict | None = None, **kwargs: Any) -> None:
        self.charts = charts  # what CloudSuite said, kept across the rows of an import
        super().__init__(*args, **kwargs)
        if "target_value" in self.fields:
            self.fields["target_value"].error_messages["required"] = (
                "Give the value in the target system."
            )
        if "kind" not in self.fields:  # the list's form edits targets only
            return
        self.fields["source_value"].error_messages["required"] = (
            "Give the value in the source system."
        )
        if "connection" in self.fields:
            self.fields["connection"].queryset = Connection.objects.filter(
                pk__in=Integration.objects.values("target_id")
            ).order_by("name")
        choices = mapping_kind_choices()
        self.fields["kind"] = forms.ChoiceField(
            label=self.fields["kind"].label,
            choices=[("", "---------"), *choices],
            error_messages={
                "invalid_choice": "“%(value)s” is not a kind of mapping any flow reads. The "
                "kinds are: " + ", ".join(value for value, _ in choices) + "."
            },
            help_text=format_html(
                "<ul class='mlc-why'>{}</ul>",
                format_html_join("", "<li><b>{}</b>: {}</li>", mapping_kind_help()),
            ),
        )

    def clean_source_value(self) -> str:
        return (self.cleaned_data.get("source_value") or "").strip()

    def clean_target_value(self) -> str:
        value = (self.cleaned_data.get("target_value") or "").strip()
        if not value:
            raise forms.ValidationError("Give the value in the target system.")
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        known = self.instance if self.instance.pk else None  # the list edits targets only
        if "kind" in self.fields:
            owners = [data.get("integration"), data.get("connection")]
            if all(o is None for o in owners):
                self.add_error(
                    "integration",
                    "Choose the integration, or the connection whose integrations share it.",
                )
            elif all(o is not None for o in owners):
                self.add_error(
                    "connection",
                    "A mapping is either one integration's or shared: leave one of them blank.",
                )
        integration = data.get("integration") or (known.integration if known else None)
        shared = data.get("connection") or (known.connection if known else None)
        kind = data.get("kind") or (known.kind if known else None)
        if not kind or (integration is None and shared is None):
            return data
        owner = {"integration": integration, "connection": shared}
        if "kind" in self.fields and (problem := mapping_kind_problem(**owner, kind=kind)):
            self.add_error("kind", problem)
            return data
        source = data.get("source_value") or (known.source_value if known else "")
        if "source_value" in self.fields and (
            problem := mapping_source_problem(**owner, kind=kind, source=source)
        ):
            self.add_error("source_value", problem)
        if integration is None:  # shared: checked as the first integration that reads it
            integration = next(iter(i for i, _ in readers(**owner, kind=kind)), None)
        value = data.get("target_value")
        if (
            integration is not None
            and value
            and (
                problem := mapping_target_problem(
                    integration=integration, kind=kind, target_value=value, charts=self.charts
                )
            )
        ):
            self.add_error("target_value", problem)
        return data
