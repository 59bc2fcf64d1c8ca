"""Admin for connections: add by kind, write-only secrets, a masked summary of what is set."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.timesince import timesince

from connections import csvsetup
from connections.admin_base import SafeModelAdmin
from connections.forms import connection_form_for, form_field_names
from connections.models import Connection, KeyRotation, OAuthToken
from connections.providers.capabilities import RotatesKeys
from connections.providers.errors import ApiError
from connections.providers.registry import SYSTEMS, capable
from connections.providers.sftp import SftpProvider
from connections.services import (
    connection_check,
    key_rotate,
    sftp_host_key_presented,
    sftp_host_key_trust,
)

logger = logging.getLogger(__name__)


def ago(then: Any, now: Any) -> str:
    """``3 minutes ago``; ``just now`` within the minute."""
    if (now - then).total_seconds() < 60:
        return "just now"
    return f"{timesince(then, now, depth=1)} ago"


@admin.register(Connection)
class ConnectionAdmin(SafeModelAdmin):
    list_display = ("name", "kind", "state", "updated_at")
    list_filter = ("kind", "status")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = (
        "credentials_on_file",
        "state",
        "last_checked_at",
        "last_check_message",
        "recent_key_rotations",
    )
    actions = ["test_connection", "rotate_key", "trust_host_key"]

    @admin.display(description="Status", ordering="status")
    def state(self, obj: Connection) -> str:
        """Its status with what it stands on: the last call that worked, the last that could
        not use the system (and why), the last test."""
        now = timezone.now()
        facts = []
        if obj.last_used_at:
            facts.append(f"last worked {ago(obj.last_used_at, now)}")
        if obj.last_failed_at and (not obj.last_used_at or obj.last_failed_at > obj.last_used_at):
            facts.append(
                f"could not be used {ago(obj.last_failed_at, now)}"
                + (f": {obj.last_failure}" if obj.last_failure else "")
            )
        if obj.last_checked_at:
            facts.append(f"tested {ago(obj.last_checked_at, now)}")
        css = {"ok": "ok", "failing": "failing"}.get(obj.status, "off")
        label = obj.get_status_display() if facts or obj.status != "untested" else "Not used yet"
        return format_html(
            '<span class="mlc-badge mlc-{}">{}</span><div class="mlc-why">{}</div>',
            css,
            label,
            "; ".join(facts) or "no call made yet",
        )

    @admin.action(description="Test the selected connections", permissions=["change"])
    def test_connection(self, request: HttpRequest, queryset: Any) -> None:
        for connection in queryset:
            result = connection_check(connection=connection)
            level = messages.SUCCESS if result.ok else messages.ERROR
            self.message_user(request, f"{connection.name}: {result.message}", level)

    @admin.action(description="Rotate the API key now", permissions=["change"])
    def rotate_key(self, request: HttpRequest, queryset: Any) -> None:
        for connection in queryset:
            if not capable(connection.kind, RotatesKeys):
                self.message_user(
                    request,
                    f"{connection.name}: ml-connector does not rotate this system's keys.",
                    messages.WARNING,
                )
                continue
            rotation = key_rotate(connection=connection, requested_by=request.user.get_username())
            level = {
                KeyRotation.Status.DONE: messages.SUCCESS,
                KeyRotation.Status.PENDING: messages.WARNING,
            }.get(rotation.status, messages.ERROR)
            self.message_user(request, f"{connection.name}: {rotation.message}", level)

    @admin.action(description="Trust the SFTP server's host key", permissions=["change"])
    def trust_host_key(self, request: HttpRequest, queryset: Any) -> HttpResponse | None:
        """Show the fingerprint each server presents; pin it once it is confirmed."""
        sftp = [
            c for c in queryset if c.kind in SYSTEMS and issubclass(c.provider_class, SftpProvider)
        ]
        if request.POST.get("confirmed") == "yes":
            for connection in sftp:
                try:
                    message = sftp_host_key_trust(
                        connection=connection, fingerprint=request.POST.get("fingerprint", "")
                    )
                except ApiError as exc:
                    message = exc.message
                level = messages.SUCCESS if message.startswith("Trusted") else messages.ERROR
                self.message_user(request, f"{connection.name}: {message}", level)
            return None
        if len(sftp) != 1:
            self.message_user(
                request, "Select one SFTP connection to trust its host key.", messages.WARNING
            )
            return None
        connection = sftp[0]
        try:
            line, shown = sftp_host_key_presented(connection=connection)
        except ApiError as exc:
            self.message_user(request, f"{connection.name}: {exc.message}", messages.ERROR)
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Trust the SFTP server's host key",
            "opts": self.model._meta,
            "connection": connection,
            "key_type": line.split()[0],
            "fingerprint": shown,
            "current": connection.setting("host_key") or "",
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(
            request, "admin/connections/connection/trust_host_key.html", context
        )

    def test_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """The connection page's Test button: test now and say how it went, in plain words."""
        connection = self.get_object(request, str(pk))
        page = reverse("admin:connections_connection_change", args=[pk])
        if connection is None or not self.has_change_permission(request, connection):
            raise PermissionDenied
        if request.method != "POST":
            return HttpResponseRedirect(page)
        self.test_connection(request, Connection.objects.filter(pk=connection.pk))
        return HttpResponseRedirect(page)

    def get_urls(self) -> list[Any]:
        own = [
            path(
                "<int:pk>/test/",
                self.admin_site.admin_view(self.test_view),
                name="connections_connection_test",
            ),
            path(
                "<int:pk>/csv-template/",
                self.admin_site.admin_view(self.csv_template_view),
                name="connections_connection_csv_template",
            ),
        ]
        return own + super().get_urls()

    def csv_template_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """Set up one kind of file of the CSV template from a sample on the server: columns by
        dropdown, dates from examples, a preview of the first rows, then save."""
        connection = self.get_object(request, str(pk))
        if (
            connection is None
            or connection.kind not in SYSTEMS
            or not csvsetup.supports(connection)
        ):
            self.message_user(request, "This connection reads no CSV files.", messages.WARNING)
            return HttpResponseRedirect(reverse("admin:connections_connection_changelist"))
        if not self.has_change_permission(request, connection):
            self.message_user(
                request, "You may not change this connection's template.", messages.ERROR
            )
            return HttpResponseRedirect(reverse("admin:connections_connection_changelist"))
        page = reverse("admin:connections_connection_csv_template", args=[connection.pk])
        provider = connection.provider_class
        kind = request.POST.get("kind") or request.GET.get("kind") or ""
        if kind not in provider.template_kinds:
            kind = next(iter(provider.template_kinds))
        try:
            files = csvsetup.sample_files(connection)
        except ApiError as exc:
            self.message_user(
                request, f"The server's files could not be listed: {exc.message}", messages.ERROR
            )
            files = []
        initial = csvsetup.initial_for(connection, kind)
        bound = request.method == "POST" and request.POST.get("kind") == kind
        data = request.POST if bound else None
        layout = (data or initial).get("layout") or "split"
        vendor_match = (data or initial).get("vendor_match") or "id"
        kinds = csvsetup.kinds_for(connection, layout=layout, vendor_match=vendor_match)
        sample_name = (data or {}).get("sample") or (files[0] if files else "")
        content, header, problem = b"", [], ""
        if sample_name and sample_name in files:
            try:
                content = csvsetup.read_sample(connection, sample_name)
                header = csvsetup.header_of(
                    content,
                    delimiter=str((data or initial).get("delimiter") or ","),
                    encoding=str((data or initial).get("encoding") or "utf-8"),
                )
            except ApiError as exc:
                problem = f"{sample_name} could not be read: {exc.message}"
        if not bound:  # the template's columns, where the sample has them
            by_name = {h.lower(): h for h in header}
            for key in [k for k in initial if k.startswith("col__")]:
                initial[key] = by_name.get(str(initial[key]).lower(), "")
            initial["sample"] = sample_name
        form = csvsetup.TemplateForm(data, initial=initial, kinds=kinds, files=files, header=header)
        sample = None
        hits: dict[str, str] = {}
        if bound and form.is_valid():
            current = dict(connection.setting("csv_template") or {})
            overrides = form.overrides(current)
            dates = [
                form.cleaned_data.get(f"col__{name}") or ""
                for name, type_ in kinds[kind].items()
                if type_.startswith("date")
            ]
            hits = csvsetup.date_hits(
                csvsetup.column_values(
                    content,
                    delimiter=form.cleaned_data["delimiter"],
                    encoding=form.cleaned_data["encoding"],
                    columns=[d for d in dates if d],
                )
            )
            if content:
                sample = csvsetup.preview(connection, overrides, kind, content)
            if request.POST.get("save"):
                missing = form.missing_required()
                if missing:
                    form.add_error(
                        None,
                        "Choose the column of every field this kind of file needs: "
                        + ", ".join(missing)
                        + ".",
                    )
                else:
                    try:
                        csvsetup.save(connection, overrides)
                    except ValidationError as exc:
                        form.add_error(None, " ".join(exc.messages))
                    else:
                        self.message_user(
                            request,
                            f"Saved the {kind.replace('_', ' ')} part of the CSV template of "
                            f"{connection.name}.",
                            messages.SUCCESS,
                        )
                        return HttpResponseRedirect(f"{page}?kind={kind}")
        context = {
            **self.admin_site.each_context(request),
            "title": f"CSV template of {connection.name}",
            "opts": self.model._meta,
            "connection": connection,
            "form": form,
            "kind": kind,
            "kinds": list(provider.template_kinds),
            "page": page,
            "header": header,
            "sample": sample,
            "sample_name": sample_name,
            "problem": problem,
            "date_hits": hits,
            "columns": [form[name] for name in form.column_fields],
            "settings_fields": [
                form[n]
                for n in (
                    "delimiter",
                    "encoding",
                    "decimal",
                    "thousands",
                    "ends_with_newline",
                    "layout",
                    "vendor_match",
                    "pattern",
                )
            ],
            "preview_fields": [csvsetup.label(name) for name in kinds[kind]],
        }
        return TemplateResponse(request, "admin/connections/connection/csv_template.html", context)

    def _tested(self, request: HttpRequest, obj: Connection) -> None:
        """Saving tests the connection and says how it went (the save itself stands)."""
        if obj.kind not in SYSTEMS:
            return
        result = connection_check(connection=obj)
        if result.ok:
            self.message_user(
                request, f"Tested “{obj.name}”: it works. {result.message}", messages.SUCCESS
            )
        else:
            self.message_user(
                request,
                f"Saved “{obj.name}”, but the test failed: {result.message} Integrations using "
                "it will fail until this is fixed.",
                messages.WARNING,
            )
            request._mlc_test_failed = True  # type: ignore[attr-defined]

    def message_user(
        self,
        request: HttpRequest,
        message: str,
        level: int = messages.INFO,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        """No "saved successfully" after a failed test: the warning says what happened."""
        if level == messages.SUCCESS and getattr(request, "_mlc_test_failed", False):
            return
        super().message_user(request, message, level, *args, **kwargs)

    def response_add(
        self, request: HttpRequest, obj: Connection, post_url_continue: Any = None
    ) -> HttpResponse:
        self._tested(request, obj)
        return super().response_add(request, obj, post_url_continue)

    def response_change(self, request: HttpRequest, obj: Connection) -> HttpResponse:
        self._tested(request, obj)
        return super().response_change(request, obj)

    def _kind(self, request: HttpRequest, obj: Connection | None) -> str:
        kind = obj.kind if obj is not None else request.POST.get("kind") or request.GET.get("kind")
        return kind if kind in SYSTEMS else next(iter(SYSTEMS))

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        obj = self.get_object(request, object_id)
        if obj is not None and obj.kind not in SYSTEMS:
            self.message_user(
                request,
                f"“{obj.name}” is a {obj.kind} connection, and ml-connector has no client for "
                "that system any more: it can only be deleted.",
                messages.WARNING,
            )
            return HttpResponseRedirect(reverse("admin:connections_connection_changelist"))
        return super().change_view(request, object_id, form_url, extra_context)

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Connection | None = None,
    ) -> HttpResponse:
        if obj is not None and obj.pk and obj.kind in SYSTEMS and csvsetup.supports(obj):
            context["csv_template_url"] = reverse(
                "admin:connections_connection_csv_template", args=[obj.pk]
            )
        if obj is not None and obj.pk and obj.kind in SYSTEMS:
            provider = obj.provider_class
            if provider.sends_webhooks():
                path = reverse("webhook", args=[obj.kind, obj.slug])
                context["webhook_url"] = request.build_absolute_uri(path)
                context["webhook_help"] = provider.webhook_help
                context["webhook_system"] = provider.label
        return super().render_change_form(request, context, add, change, form_url, obj)

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        if (request.POST.get("kind") or request.GET.get("kind")) not in SYSTEMS:
            context = {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": "Add connection: choose the system",
                "kinds": [(k, provider.label) for k, provider in SYSTEMS.items()],
            }
            return TemplateResponse(
                request, "admin/connections/connection/choose_kind.html", context
            )
        return super().add_view(request, form_url, extra_context)

    def get_form(
        self,
        request: HttpRequest,
        obj: Connection | None = None,
        change: bool = False,
        **kwargs: Any,
    ) -> Any:
        kwargs["form"] = connection_form_for(self._kind(request, obj))
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fieldsets(self, request: HttpRequest, obj: Connection | None = None) -> Any:
        kind = self._kind(request, obj)
        creds, settings = form_field_names(kind)
        fieldsets: list[Any] = [
            (None, {"fields": ["name", "slug", "kind"]}),
            ("Credentials (encrypted, never shown again)", {"fields": creds}),
            ("Settings", {"fields": settings}),
        ]
        if obj is not None:
            fieldsets.insert(1, ("On file", {"fields": ["credentials_on_file"]}))
            fieldsets.append(
                ("Status", {"fields": ["state", "last_checked_at", "last_check_message"]})
            )
            if capable(obj.kind, RotatesKeys):
                fieldsets.append(("Key rotations", {"fields": ["recent_key_rotations"]}))
        return fieldsets

    @admin.display(description="Latest")
    def recent_key_rotations(self, obj: Connection) -> str:
        rows = [
            (
                f"{r.started_at:%Y-%m-%d %H:%M:%S %Z}",
                r.get_status_display(),
                r.message or "—",
            )
            for r in obj.key_rotations.order_by("-started_at")[:5]
        ]
        return (
            format_html_join("", "<div><b>{}</b> · {} — {}</div>", rows)
            or "Never rotated by ml-connector."
        )

    @admin.display(description="Credentials")
    def credentials_on_file(self, obj: Connection) -> str:
        """Which credentials are set: non-secret values shown, secrets only as 'set'."""
        creds = obj.credentials or {}
        rows = []
        for spec in obj.spec.credentials:
            if spec.name not in creds:
                continue
            shown = "•••••• (set)" if spec.secret else creds[spec.name]
            rows.append((spec.label, shown))
        return format_html_join("", "<div><b>{}</b>: {}</div>", rows) or "None"


@admin.register(OAuthToken)
class OAuthTokenAdmin(SafeModelAdmin):
    """Token state for support: expiry and refresh counts, never the tokens themselves."""

    list_display = ("connection", "expires_at", "lifetime_seconds", "refresh_count", "updated_at")
    fields = (
        "connection",
        "token_type",
        "obtained_at",
        "expires_at",
        "lifetime_seconds",
        "refresh_count",
        "last_error",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(KeyRotation)
class KeyRotationAdmin(SafeModelAdmin):
    """Every rotation of a Stripe key: when, by whom, the key ids and how it ended (never a
    secret)."""

    list_display = (
        "connection",
        "status",
        "started_at",
        "finished_at",
        "old_key_id",
        "new_key_id",
        "old_key_expires_at",
        "requested_by",
    )
    list_filter = ("status", "connection")
    fields = (
        "connection",
        "status",
        "requested_by",
        "started_at",
        "finished_at",
        "attempts",
        "old_key_id",
        "new_key_id",
        "grace_minutes",
        "old_key_expires_at",
        "message",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
