"""Admin forms for connections, built from each system's ``ConnectionSpec``.

Secrets are write-only: password inputs that never render the stored value, "leave blank to
keep" on change.  A system whose credentials come as a file (Infor's ``.ionapi``) gets an upload
field instead of typed-in credentials.
"""

from __future__ import annotations

import logging
from typing import Any

from django import forms

from connections.models import Connection
from connections.providers.base import Provider
from connections.providers.registry import provider_class
from connections.providers.spec import ConnectionSpec, FieldSpec, as_text

logger = logging.getLogger(__name__)

CRED = "cred__"
SETTING = "setting__"
CREDENTIALS_FILE = "credentials_file"
MAX_UPLOAD_BYTES = 64 * 1024  # a credentials file is a few hundred bytes


def _setting_field(spec: FieldSpec) -> forms.Field:
    widget = forms.Textarea(attrs={"rows": 4}) if spec.multiline else None
    return forms.CharField(
        label=spec.label,
        required=spec.required and spec.default is None,
        help_text=spec.help,
        widget=widget,
    )


class SecretTextarea(forms.Textarea):
    """A textarea for a secret (a private key): it never renders a value, not even the one just
    submitted when the form comes back with an error."""

    def format_value(self, value: Any) -> None:
        return None


def _credential_field(spec: FieldSpec) -> forms.Field:
    if spec.secret:
        widget: forms.Widget = forms.PasswordInput(
            render_value=False, attrs={"autocomplete": "off"}
        )
        if spec.multiline:
            widget = SecretTextarea(attrs={"rows": 4, "autocomplete": "off"})
    else:
        widget = forms.TextInput()
    return forms.CharField(
        label=spec.label, required=False, help_text=spec.help, widget=widget, strip=True
    )


class ConnectionForm(forms.ModelForm):
    """Base form; ``connection_form_for(kind)`` adds the system's fields."""

    provider: type[Provider]

    class Meta:
        model = Connection
        fields = ["name", "slug", "kind"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        spec: ConnectionSpec = self.provider.spec
        adding = self.instance.pk is None
        if "kind" in self.fields:
            self.fields["kind"].initial = self.provider.kind
            self.fields["kind"].disabled = True
        current = self.instance.settings or {}
        for field_spec in spec.settings:
            name = SETTING + field_spec.name
            if name in self.fields:
                value = current.get(field_spec.name, field_spec.default)
                self.fields[name].initial = as_text(value) if isinstance(value, dict) else value
        if spec.credentials_file and CREDENTIALS_FILE in self.fields:
            self.fields[CREDENTIALS_FILE].required = adding
            if not adding:
                self.fields[CREDENTIALS_FILE].help_text = (
                    f"Upload a new {spec.credentials_file.label} to replace the current "
                    "credentials; leave empty to keep them."
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
        spec = self.provider.spec
        self.instance.kind = self.provider.kind
        settings = dict(self.instance.settings or {})
        for field_spec in spec.settings:
            settings[field_spec.name] = cleaned.get(SETTING + field_spec.name)
        if "host_key" in settings and not settings["host_key"] and settings.get("host"):
            from connections.services import sftp_known_host_key  # a server trusted already

            try:
                port = int(settings.get("port") or 22)
            except (TypeError, ValueError):
                port = 22
            settings["host_key"] = (
                sftp_known_host_key(host=str(settings["host"]), port=port, exclude=self.instance.pk)
                or settings["host_key"]
            )
        self.instance.settings = settings

        credentials: dict[str, str] | None = dict(self.instance.credentials or {})
        if spec.credentials_file:
            upload = cleaned.get(CREDENTIALS_FILE)
            if upload:
                try:
                    credentials = spec.credentials_file.parse(upload.read(MAX_UPLOAD_BYTES + 1))
                except ValueError as exc:
                    self.add_error(CREDENTIALS_FILE, str(exc))
                    credentials = None  # the file error says it all; nothing else to check
        else:
            for field_spec in spec.credentials:
                value = cleaned.get(CRED + field_spec.name)
                if value:
                    credentials[field_spec.name] = value
        self.instance.credentials = credentials
        return cleaned


def connection_form_for(kind: str) -> type[ConnectionForm]:
    """A ConnectionForm subclass with the fields of ``kind``'s system."""
    provider = provider_class(kind)
    spec = provider.spec
    attrs: dict[str, Any] = {"provider": provider}
    if spec.credentials_file:
        attrs[CREDENTIALS_FILE] = forms.FileField(
            label=spec.credentials_file.label, help_text=spec.credentials_file.help
        )
    else:
        for field_spec in spec.credentials:
            attrs[CRED + field_spec.name] = _credential_field(field_spec)
    for field_spec in spec.settings:
        attrs[SETTING + field_spec.name] = _setting_field(field_spec)
    return type(f"{kind.title().replace('_', '')}ConnectionForm", (ConnectionForm,), attrs)


def form_field_names(kind: str) -> tuple[list[str], list[str]]:
    """(credential field names, setting field names) of ``kind``'s form, for fieldsets."""
    spec = provider_class(kind).spec
    if spec.credentials_file:
        creds = [CREDENTIALS_FILE]
    else:
        creds = [CRED + f.name for f in spec.credentials]
    return creds, [SETTING + f.name for f in spec.settings]
