"""CSV import and export (django-import-export): audit records and collections out for
month-end, field mappings in — previewed row by row, each checked as the form checks it, before
anything is saved."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from import_export import fields, resources
from import_export.formats.base_formats import CSV
from import_export.widgets import ForeignKeyWidget

from audit.models import AuditRecord, Collection
from connections.models import Connection
from syncs import display
from syncs.models import FieldMapping, Integration

logger = logging.getLogger(__name__)


COLUMNS = ("integration", "connection", "kind", "source_value", "target_value", "note")


class SpreadsheetCSV(CSV):
    """CSV as spreadsheets write it: comma-, semicolon- (Excel in most of Europe) or
    tab-separated, the separator read from the header line."""

    SEPARATORS = (",", ";", "\t")

    def create_dataset(self, in_stream: Any, **kwargs: Any) -> Any:
        if isinstance(in_stream, bytes) and self.encoding:
            in_stream = in_stream.decode(self.encoding)
        header = in_stream.lstrip("\ufeff").split("\n", 1)[0]
        kwargs.setdefault("delimiter", max(self.SEPARATORS, key=header.count))
        return super().create_dataset(in_stream.lstrip("\ufeff"), **kwargs)


class IntegrationBySlug(ForeignKeyWidget):
    """The integration a row names by its slug; an unknown one is that row's problem alone."""

    def clean(self, value: Any, row: Any = None, **kwargs: Any) -> Any:
        slug = str(value or "").strip()
        if not slug:
            if str((row or {}).get("connection") or "").strip():
                return None  # a shared mapping: the connection names who uses it
            raise ValueError(
                "Give the integration (its slug, as in the export), or the connection whose "
                "integrations share the mapping."
            )
        found = Integration.objects.filter(slug=slug).first()
        if found is None:
            raise ValueError(f"There is no integration “{slug[:80]}”: check the slug.")
        return found

    def render(self, value: Any, obj: Any = None, **kwargs: Any) -> str:
        return value.slug if value is not None else ""


class ConnectionBySlug(ForeignKeyWidget):
    """The connection a shared mapping belongs to, by its slug (blank: an integration's own)."""

    def clean(self, value: Any, row: Any = None, **kwargs: Any) -> Any:
        slug = str(value or "").strip()
        if not slug:
            return None
        found = Connection.objects.filter(slug=slug).first()
        if found is None:
            raise ValueError(f"There is no connection “{slug[:80]}”: check the slug.")
        return found

    def render(self, value: Any, obj: Any = None, **kwargs: Any) -> str:
        return value.slug if value is not None else ""


class FieldMappingResource(resources.ModelResource):
    """Mappings by integration slug, kind and source value: a row for an existing one updates
    its target; unchanged rows are skipped.  Every row is checked as the mapping form checks
    it (the same form: the kind, the values, a GL account in CloudSuite's chart, a supplier
    CloudSuite has) before anything is saved; the preview words each row's problems, and a
    file with any is not imported."""

    integration = fields.Field(
        attribute="integration",
        column_name="integration",
        widget=IntegrationBySlug(Integration, field="slug"),
    )
    connection = fields.Field(
        attribute="connection",
        column_name="connection",
        widget=ConnectionBySlug(Connection, field="slug"),
    )

    class Meta:
        model = FieldMapping
        fields = COLUMNS
        import_id_fields = ("integration", "kind", "source_value")
        export_order = fields
        skip_unchanged = True
        report_skipped = True
        clean_model_instances = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._charts: dict = {}  # CloudSuite's answers, read once per file

    def before_import_row(self, row: Any, **kwargs: Any) -> None:
        for key in COLUMNS:  # a column the file lacks is a blank the form words per row
            row[key] = str(row.get(key) or "").strip()

    def get_instance(self, instance_loader: Any, row: Any) -> Any:
        integration = Integration.objects.filter(slug=row.get("integration") or "").first()
        if integration is not None:
            return FieldMapping.objects.filter(
                integration=integration, kind=row.get("kind"), source_value=row.get("source_value")
            ).first()
        shared = Connection.objects.filter(slug=row.get("connection") or "").first()
        if shared is not None and not row.get("integration"):
            return FieldMapping.objects.filter(
                integration=None,
                connection=shared,
                kind=row.get("kind"),
                source_value=row.get("source_value"),
            ).first()
        return None  # the row's problem is worded when it is checked

    def validate_instance(
        self, instance: Any, import_validation_errors: Any = None, validate_unique: bool = True
    ) -> None:
        """The mapping form's checks on the row, field by field in plain words."""
        from syncs.forms import FieldMappingForm

        errors = dict(import_validation_errors or {})
        data = {
            "integration": instance.integration_id or "",
            "connection": instance.connection_id or "",
            "kind": instance.kind,
            "source_value": instance.source_value,
            "target_value": instance.target_value,
            "note": instance.note,
        }
        saved = FieldMapping.objects.filter(pk=instance.pk).first() if instance.pk else None
        form = FieldMappingForm(data=data, instance=saved or FieldMapping(), charts=self._charts)
        if not form.is_valid():
            for field, messages in form.errors.items():
                key = NON_FIELD_ERRORS if field == "__all__" else field
                if key == "integration" and "integration" in errors:
                    continue  # the slug's own problem says it better
                errors[key] = [*errors.get(key, []), *messages]
        if errors:
            raise ValidationError(errors)


class AuditRecordResource(resources.ModelResource):
    """The audit trail as a finance user reads it (no payloads)."""

    integration = fields.Field(attribute="integration__name", column_name="integration")
    status = fields.Field(attribute="get_status_display", column_name="status")

    class Meta:
        model = AuditRecord
        fields = (
            "id",
            "created_at",
            "integration",
            "stream",
            "source_key",
            "target_key",
            "status",
            "reason",
            "seen_via",
            "times_seen",
            "resolved_at",
            "resolved_by",
            "resolution",
        )
        export_order = fields


class CollectionResource(resources.ModelResource):
    """What Stripe collected and where it was posted: one row per receipt."""

    date = fields.Field(attribute="created_at", column_name="posted_at")
    integration = fields.Field(attribute="integration__name", column_name="integration")
    stripe_id = fields.Field(attribute="source_key", column_name="stripe_id")
    receipt = fields.Field(attribute="target_key", column_name="receipt_batch")
    kind = fields.Field(column_name="kind")
    customer = fields.Field(column_name="customer")
    invoice = fields.Field(column_name="invoice")
    currency = fields.Field(column_name="currency")
    amount = fields.Field(column_name="amount")
    fee = fields.Field(column_name="fee")
    net = fields.Field(column_name="net")
    gl = fields.Field(column_name="gl_account")

    class Meta:
        model = Collection
        fields = (
            "date",
            "integration",
            "stripe_id",
            "kind",
            "customer",
            "invoice",
            "currency",
            "amount",
            "fee",
            "net",
            "gl",
            "receipt",
        )
        export_order = fields

    _row = staticmethod(display.collection_of)

    def dehydrate_kind(self, obj: AuditRecord) -> str:
        return self._row(obj)["kind"]

    def dehydrate_customer(self, obj: AuditRecord) -> str:
        return self._row(obj)["customer"]

    def dehydrate_invoice(self, obj: AuditRecord) -> str:
        return self._row(obj)["invoice"]

    def dehydrate_currency(self, obj: AuditRecord) -> str:
        return self._row(obj)["currency"]

    def dehydrate_amount(self, obj: AuditRecord) -> str:
        return str(self._row(obj)["amount"])

    def dehydrate_fee(self, obj: AuditRecord) -> str:
        return str(self._row(obj)["fee"])

    def dehydrate_net(self, obj: AuditRecord) -> str:
        return str(self._row(obj)["net"])

    def dehydrate_gl(self, obj: AuditRecord) -> str:
        return self._row(obj)["gl"]
