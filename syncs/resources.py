"""CSV import and export (django-import-export): audit records and collections out for
month-end, field mappings in — previewed row by row, each checked as the form checks it, before
anything is saved."""

from __future__ import annotations

import logging
from typing import Any

from import_export import fields, resources
from import_export.widgets import ForeignKeyWidget

from audit.models import AuditRecord, Collection
from syncs import display
from syncs.models import FieldMapping, Integration

logger = logging.getLogger(__name__)


class FieldMappingResource(resources.ModelResource):
    """Mappings by integration slug, kind and source value: a row for an existing one updates
    its target; unchanged rows are skipped; a bad row is an error in the preview."""

    integration = fields.Field(
        attribute="integration",
        column_name="integration",
        widget=ForeignKeyWidget(Integration, field="slug"),
    )

    class Meta:
        model = FieldMapping
        fields = ("integration", "kind", "source_value", "target_value", "note")
        import_id_fields = ("integration", "kind", "source_value")
        export_order = fields
        skip_unchanged = True
        report_skipped = True
        clean_model_instances = True

    def before_import_row(self, row: Any, **kwargs: Any) -> None:
        for key in ("integration", "kind", "source_value", "target_value", "note"):
            if key in row and isinstance(row[key], str):
                row[key] = row[key].strip()


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
