"""What an IFS Cloud connection needs: the tenant's address and IAM realm, an OAuth client, and
where the projections live.

Projection and entity-set names, and the field each set is read incrementally by, differ between
IFS releases and tenants (the contracts README marks them unverified): each is a setting, one per
line, with defaults that name the sets the IFS documentation names.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from django.core.exceptions import ValidationError

from connections.providers.spec import (
    ConnectionSpec,
    FieldSpec,
    http_settings,
    text,
    text_map,
    url,
)

logger = logging.getLogger(__name__)

# need → "Projection.svc/EntitySet" (unverified per tenant: override on the connection).
DEFAULT_ENTITIES: dict[str, str] = {
    "customers": "CustomerHandling.svc/CustomerInfoSet",
    "orders": "CustomerOrderHandling.svc/CustomerOrderSet",
    "invoices": "CustomerInvoiceHandling.svc/CustomerInvoiceSet",
    "vouchers": "VoucherHandling.svc/VoucherSet",
    # An invoice's lines as an entity set of their own, where the invoice declares no
    # navigation to them (none by default: the navigation $metadata declares is used).
    "invoice_lines": "",
}
# need → the field a set is read incrementally by (unverified: no change field is documented for
# every projection).
DEFAULT_CHANGE_FIELDS: dict[str, str] = {
    "customers": "ChangedDate",
    "orders": "ChangedDate",
    "invoices": "ChangedDate",
    "vouchers": "ChangedDate",
}
_ENTITY = re.compile(r"^[A-Za-z][A-Za-z0-9_]*\.svc/[A-Za-z][A-Za-z0-9_]*$")
_FIELD = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def _overrides(value: Any, *, pattern: re.Pattern[str], shape: str, known: dict) -> dict:
    return text_map(known=known, value_pattern=pattern.pattern, shape=shape)(value)


def clean_entities(value: Any) -> dict[str, str]:
    """``need = Projection.svc/EntitySet`` lines (or a JSON object)."""
    return _overrides(
        value,
        pattern=_ENTITY,
        shape="need = Projection.svc/EntitySet, "
        "e.g. customers = CustomerHandling.svc/CustomerInfoSet",
        known=DEFAULT_ENTITIES,
    )


def clean_change_fields(value: Any) -> dict[str, str]:
    """``need = FieldName`` lines (or a JSON object)."""
    return _overrides(
        value,
        pattern=_FIELD,
        shape="need = FieldName, e.g. customers = ChangedDate",
        known=DEFAULT_CHANGE_FIELDS,
    )


def navigation(value: Any) -> str:
    value = text(value)
    if value and not _FIELD.match(value):
        raise ValidationError("A navigation property is a name such as InvoiceLines.")
    return value


def states(value: Any) -> str:
    names = [s.strip() for s in text(value).split(",") if s.strip()]
    if not names or not all(_FIELD.match(n) for n in names):
        raise ValidationError("Name one state or more, comma-separated, e.g. Posted, Printed.")
    return ", ".join(names)


def realm(value: Any) -> str:
    value = text(value)
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,100}", value):
        raise ValidationError("The IAM namespace (realm) is a name such as acme-prod.")
    return value


def api_path(value: Any) -> str:
    value = text(value).strip("/")
    if value not in ("main/ifsapplications/projection/v1", "int/ifsapplications/projection/v1"):
        raise ValidationError(
            "Use main/ifsapplications/projection/v1, or int/… for an integration user."
        )
    return value


SPEC = ConnectionSpec(
    credentials=(
        FieldSpec("client_id", "IAM client id", secret=False),
        FieldSpec(
            "client_secret",
            "IAM client secret",
            help="The client's secret from IFS Cloud Web > Solution Manager > IAM Client.",
        ),
    ),
    settings=(
        FieldSpec(
            "base_url",
            "IFS Cloud address",
            secret=False,
            clean=url,
            help="e.g. https://acme.ifs.cloud — or a sandbox simulator.",
        ),
        FieldSpec("realm", "IAM namespace (realm)", secret=False, clean=realm),
        FieldSpec(
            "api_path",
            "Projection path",
            secret=False,
            default="main/ifsapplications/projection/v1",
            clean=api_path,
        ),
        FieldSpec(
            "entities",
            "Entity set overrides",
            secret=False,
            required=False,
            clean=clean_entities,
            multiline=True,
            help="Only where this tenant differs, one per line: need = Projection.svc/EntitySet. "
            "Defaults: "
            + "; ".join(f"{k} = {v}" for k, v in DEFAULT_ENTITIES.items() if v)
            + ". Where an invoice declares no navigation to its lines, name their set: "
            "invoice_lines = CustomerInvoiceHandling.svc/CustomerInvoiceLineSet.",
        ),
        FieldSpec(
            "invoice_lines_navigation",
            "Invoice lines navigation",
            secret=False,
            required=False,
            clean=navigation,
            help="The navigation property from an invoice to its lines, where $metadata "
            "declares several collections (e.g. InvoiceLines). Empty: the only one it declares.",
        ),
        FieldSpec(
            "payable_states",
            "Payable invoice states",
            secret=False,
            default="Posted, PartlyPaidPosted",
            clean=states,
            help="The invoice states (Objstate) a customer can pay, comma-separated: only "
            "invoices in one of them go to Stripe; others (preliminary, paid, cancelled) are "
            "skipped with the reason in the audit.",
        ),
        FieldSpec(
            "change_fields",
            "Change field overrides",
            secret=False,
            required=False,
            clean=clean_change_fields,
            multiline=True,
            help="The field each set is read incrementally by, one per line: need = FieldName "
            "(default ChangedDate).",
        ),
        *http_settings(
            rate_per_minute=800,
            burst=5,  # no burst is published: half the least a server may allow (10)
            rate_help="IFS Cloud allows a tenant about 1,000 requests a minute (429 past it); "
            "800 leaves room for the tenant's other clients and for uneven pacing.",
        ),
    ),
)
