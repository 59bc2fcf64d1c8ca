"""Forms a finance user fills in: a field mapping (in the admin and, row by row, in a CSV
import), checked against the target system where it can be."""

from __future__ import annotations

import logging
from typing import Any

from django import forms
from django.utils.html import format_html, format_html_join

from connections.models import Connection
from syncs.models import FieldMapping, Integration
from syncs.services import mapping_target_problem

logger = logging.getLogger(__name__)


MAPPING_HELP = {
    "vendor": "Source: the vendor id in the source system (e.g. Stampli's V-1001). "
    "Target: the CloudSuite supplier number (SUNO).",
    "customer": "Source: the customer id in the source system. Target: the customer in the "
    "target system.",
    "gl_account": "Source: the GL code in the source system, or a role such as "
    "stripe_receipts, stripe_receipts:SEK, wise_ap:EUR, wise_bank:GBP, stampli_ap:USD. Target: "
    "the CloudSuite accounting string, dimensions separated by ; (e.g. 1930 or 6100;200).",
    "charge_code": "Source: stripe_fees. Target: the CloudSuite charge code (CHRI) that takes "
    "Stripe's fees.",
    "tax_code": "Source: the tax code in the source system. Target: the target's tax code.",
    "currency": "Source: a currency code as the source writes it. Target: the ISO 4217 code.",
    "payment_method": "Source: the payment method in the source. Target: the target's code.",
    "cost_center": "Source: the cost centre in Stampli. Target: the CloudSuite dimension value.",
    "cin7_account": "Source: the CloudSuite account. Target: the Cin7 Core account code (Cin7's "
    "chart is read-only: the account must exist there).",
    "cin7_supplier": "Source: the CloudSuite supplier number. Target: the Cin7 Core supplier ID.",
    "item_account": "Source: the CloudSuite item number (ITNO) of a purchase line. Target: the "
    "Cin7 Core account code the line is booked to (it must be in Cin7's chart).",
    "tax_rule": "Source: the CloudSuite VAT code (VTCD) of a purchase line. Target: the name of "
    "the Cin7 Core tax rule, as Cin7 lists it (e.g. Tax on Purchases).",
    "payment_term": "Source: the CloudSuite payment terms code (TEPY) of a supplier. Target: the "
    "name of the Cin7 Core payment term (e.g. 30 days).",
}


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
        self.fields["kind"].error_messages["invalid_choice"] = (
            "“%(value)s” is not a kind of mapping. The kinds are: "
            + ", ".join(value for value, _ in FieldMapping.Kind.choices)
            + "."
        )
        self.fields["kind"].help_text = format_html(
            "<ul class='mlc-why'>{}</ul>",
            format_html_join(
                "",
                "<li><b>{}</b>: {}</li>",
                (
                    (label, MAPPING_HELP.get(value, ""))
                    for value, label in FieldMapping.Kind.choices
                ),
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
        if integration is None and shared is not None:  # checked as an integration posting there
            integration = Integration.objects.filter(target=shared).order_by("pk").first()
        kind = data.get("kind") or (known.kind if known else None)
        value = data.get("target_value")
        if (
            kind
            and integration is not None
            and value
            and (
                problem := mapping_target_problem(
                    integration=integration, kind=kind, target_value=value, charts=self.charts
                )
            )
        ):
            self.add_error("target_value", problem)
        return data
