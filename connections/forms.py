"""Admin forms for connections, built from each kind's spec.

Secrets are write-only: password inputs that never render the stored value, "leave blank to
keep" on change.  An Infor connection takes its credentials from an uploaded ``.ionapi`` file.
"""

from __future__ import annotations

import logging
from typing import Any

from django import forms

from connections.kinds import KINDS, FieldSpec, KindSpec
from connections.models import Connection
from connections.providers.ionapi import IonApiError, parse_ionapi

logger = logging.getLogger(__name__)

CRED = "cred__"
SETTING = "setting__"


def _setting_field(spec: FieldSpec) -> forms.Field:
    widget = forms.Textarea(attrs={"rows": 4}) if spec.multiline else None
    return forms.CharField(
        label=spec.label,
        required=spec.required and spec.default is None,
        help_text=spec.help,
        widget=widget,
    )


def _credential_field(spec: FieldSpec) -> forms.Field:
    if spec.secret:
        widget: forms.Widget = forms.PasswordInput(
            render_value=False, attrs={"autocomplete": "off"}
        )
        if spec.multiline:
            widget = forms.Textarea(attrs={"rows": 4, "autocomplete": "off"})
    else:
        widget = forms.TextInput()
    return forms.CharField(
        label=spec.label, required=False, help_text=spec.help, widget=widget, strip=True
    )


class ConnectionForm(forms.ModelForm):
    """Base form; ``connection_form_for(kind)`` adds the kind's fields."""

    kind_spec: KindSpec

    class Meta:
        model = Connection
        fields = ["name", "slug", "kind"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        spec = self.kind_spec
        adding = self.instance.pk is None
        if "kind" in self.fields:
            self.fields["kind"].initial = spec.kind
            self.fields["kind"].disabled = True
        current = self.instance.settings or {}
        for field_spec in spec.settings:
            name = SETTING + field_spec.name
            if name in self.fields:
                value = current.get(field_spec.name, field_spec.default)
                if isinstance(value, dict):  # shown as "key = value" lines
                    value = "\n".join(f"{k} = {v}" for k, v in value.items())
                self.fields[name].initial = value
        if spec.uses_ionapi and "ionapi_file" in self.fields:
            self.fields["ionapi_file"].required = adding
            if not adding:
                self.fields["ionapi_file"].help_text = (
                    "Upload a new .ionapi file to replace the current credentials; leave empty "
                    "to keep them."
                )
        for field_spec in spec.credentials:
            name = CRED + field_spec.name
            if name in self.fields:
                required = field_spec.required and adding
                self.fields[name].required = required
                if not adding and field_spec.secret:
                    self.fields[name].help_text = "Leave blank to keep the current value."
                elif not field_spec.secret:
                    self.fields[name].initial = (self.instance.credentials or {}).get(
                        field_spec.name
                    )

    def clean(self) -> dict[str, Any]:
        """Gather settings and credentials onto the instance; ``Connection.clean`` validates."""
        cleaned = super().clean()
        spec = self.kind_spec
        self.instance.kind = spec.kind
        settings = dict(self.instance.settings or {})
        for field_spec in spec.settings:
            settings[field_spec.name] = cleaned.get(SETTING + field_spec.name)
        self.instance.settings = settings

        credentials: dict[str, str] | None = dict(self.instance.credentials or {})
        if spec.uses_ionapi:
            upload = cleaned.get("ionapi_file")
            if upload:
                try:
                    credentials = dict(parse_ionapi(upload.read()).values)
                except IonApiError as exc:
                    self.add_error("ionapi_file", str(exc))
                    credentials = None  # the file error says it all; nothing else to check
        else:
            for field_spec in spec.credentials:
                value = cleaned.get(CRED + field_spec.name)
                if value:
                    credentials[field_spec.name] = value
        self.instance.credentials = credentials
        return cleaned


def connection_form_for(kind: str) -> type[ConnectionForm]:
    """A ConnectionForm subclass with the fields of ``kind``."""
    spec = KINDS[kind]
    attrs: dict[str, Any] = {"kind_spec": spec}
    if spec.uses_ionapi:
        attrs["ionapi_file"] = forms.FileField(
            label=".ionapi file",
            help_text="From ION API > Authorized Apps: a backend service app's credentials file.",
        )
    else:
        for field_spec in spec.credentials:
            attrs[CRED + field_spec.name] = _credential_field(field_spec)
    for field_spec in spec.settings:
        attrs[SETTING + field_spec.name] = _setting_field(field_spec)
    return type(f"{kind.title().replace('_', '')}ConnectionForm", (ConnectionForm,), attrs)


def form_field_names(kind: str) -> tuple[list[str], list[str]]:
    """(credential field names, setting field names) of ``kind``'s form, for fieldsets."""
    spec = KINDS[kind]
    creds = ["ionapi_file"] if spec.uses_ionapi else [CRED + f.name for f in spec.credentials]
    return creds, [SETTING + f.name for f in spec.settings]
