"""What an Infor CloudSuite connection needs: its ``.ionapi`` file, company, division, overrides.

The credentials are the tenant's ``.ionapi`` file (uploaded whole); settings say which company
(CONO) and division (DIVI) to work in and, where a tenant names a program or transaction
differently from the M3 catalogue, the override (``need = PROGRAM/TRANSACTION``).
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import ValidationError

from connections.providers.infor_m3.ionapi import parse_ionapi
from connections.providers.spec import (
    ConnectionSpec,
    CredentialsFile,
    FieldSpec,
    http_settings,
    positive_int,
    url,
)

logger = logging.getLogger(__name__)

# need → (program, transaction): defaults from the M3 catalogue; override per connection.
DEFAULT_PROGRAMS: dict[str, tuple[str, str]] = {
    "customers.list": ("CRS610MI", "LstByNumber"),
    "customers.get": ("CRS610MI", "GetBasicData"),
    "accounts.list": ("CRS630MI", "LstAccountID"),
    "invoices.list": ("ARS200MI", "LstInvByDivi"),
    "invoices.list_by_customer": ("ARS200MI", "LstInvoices"),
    "invoices.get": ("ARS200MI", "GetInvoice"),
    "receipts.head": ("ARS040MI", "AddBatchHead"),
    "receipts.line": ("ARS040MI", "AddBatchLine"),
    "receipts.charge": ("ARS040MI", "AddBatchCharge"),
    "receipts.control": ("ARS040MI", "ControlBatch"),
    "suppliers.list": ("CRS620MI", "LstSuppliers"),
    "suppliers.get": ("CRS620MI", "GetBasicData"),
    "supplier_invoices.search": ("APS200MI", "SearchSupInvoic"),
    "supplier_invoices.get": ("APS200MI", "GetInvoice"),
    # Payments made outside CloudSuite (Wise) are written to its GL as a journal batch through
    # the generic GL interface, the catalogue's one route where the caller sets the accounting
    # string (there is no "payment log" program in the catalogue; MRS001MI lists what a tenant
    # exposes, and an override names another).
    "payments.head": ("GLS840MI", "AddBatchHead"),
    "payments.line": ("GLS840MI", "AddBatchLine"),
    "payments.control": ("GLS840MI", "CtrlBatch"),
    "ap_invoices.head": ("APS450MI", "AddHead"),
    "ap_invoices.line": ("APS450MI", "AddLine"),
    "ap_invoices.get": ("APS450MI", "GetHead"),
    "ap_invoices.find": ("APS450MI", "LstInvBySupInv"),
    "ap_invoices.validate": ("APS455MI", "ValidByBatchNo"),
    "vouchers.lines": ("GLS200MI", "LstVoucherLines"),
    "purchase_orders.search": ("PPS200MI", "SearchHead"),
    "purchase_orders.get": ("PPS200MI", "GetHead"),
    "purchase_orders.lines": ("PPS200MI", "LstLine"),
    "discovery.transactions": ("MRS001MI", "LstTransactions"),
}


def clean_programs(value: Any) -> dict[str, str]:
    """``need = PROGRAM/TRANSACTION`` lines (or a JSON object) → {need: "PROGRAM/TRANSACTION"}."""
    if isinstance(value, dict):
        items = list(value.items())
    else:
        items = []
        for line in str(value).splitlines():
            if line.strip():
                need, sep, target = line.partition("=")
                if not sep:
                    raise ValidationError(
                        f"“{line.strip()[:80]}”: write need = PROGRAM/TRANSACTION."
                    )
                items.append((need, target))
    cleaned = {}
    for need, target in items:
        need = str(need).strip()
        if need not in DEFAULT_PROGRAMS:
            raise ValidationError(
                f"“{need[:80]}” is not something ml-connector calls; "
                f"known: {', '.join(sorted(DEFAULT_PROGRAMS))}."
            )
        program, sep, transaction = str(target).strip().partition("/")
        if not sep or not program.strip().isalnum() or not transaction.strip().isalnum():
            raise ValidationError(
                f"“{need}”: write PROGRAM/TRANSACTION, e.g. ARS040MI/AddBatchHead."
            )
        cleaned[need] = f"{program.strip().upper()}/{transaction.strip()}"
    return cleaned


# The fixed-format PARM record of a GL journal line (GLS840MI AddBatchLine): a tenant defines
# its interface types in GLS840 and the layout of their records; this default is the sandbox's
# (unverified for any real tenant: set the connection's layout to match the interface used).
DEFAULT_JOURNAL_LAYOUT = (
    "ACDT:8,AIT1:8,AIT2:8,AIT3:8,AIT4:8,AIT5:8,AIT6:8,AIT7:8,CUCD:3,CUAM:17,VTXT:40,"
    "SUNO:10,SINO:24,INYR:4"
)
JOURNAL_FIELDS = ("ACDT", "AIT1", "AIT2", "AIT3", "AIT4", "AIT5", "AIT6", "AIT7", "CUCD", "CUAM")


def clean_layout(value: Any) -> str:
    """``FIELD:width,…`` naming at least the fields a journal line needs."""
    text = str(value).replace(" ", "").strip(",")
    names = []
    for part in text.split(","):
        name, sep, width = part.partition(":")
        if not sep or not name.isalnum() or not width.isdigit() or not 0 < int(width) <= 60:
            raise ValidationError(f"“{part[:40]}”: write FIELD:width, e.g. AIT1:8.")
        names.append(name.upper())
    missing = [f for f in ("ACDT", "AIT1", "CUCD", "CUAM") if f not in names]
    if missing:
        raise ValidationError(f"The layout needs {', '.join(missing)}.")
    return ",".join(
        f"{n}:{p.partition(':')[2]}" for n, p in zip(names, text.split(","), strict=True)
    )


# The keys of an .ionapi file (see contracts): which are secret and which are required.
IONAPI_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("ti", "Tenant", secret=False),
    FieldSpec("cn", "Application name", secret=False, required=False),
    FieldSpec("ci", "Client id"),
    FieldSpec("cs", "Client secret"),
    FieldSpec("iu", "ION API gateway URL", secret=False, clean=url),
    FieldSpec("pu", "Authorization server URL", secret=False, clean=url),
    FieldSpec("oa", "Authorize path", secret=False, required=False),
    FieldSpec("ot", "Token path", secret=False),
    FieldSpec("or", "Revoke path", secret=False, required=False),
    FieldSpec("saak", "Service account access key"),
    FieldSpec("sask", "Service account secret key"),
)

SPEC = ConnectionSpec(
    credentials=IONAPI_FIELDS,
    credentials_file=CredentialsFile(
        label=".ionapi file",
        help="From ION API > Authorized Apps: a backend service app's credentials file.",
        parse=lambda content: dict(parse_ionapi(content).values),
    ),
    allow_extra_credentials=True,  # dt, ev, v: present in real files, meaning unverified
    settings=(
        FieldSpec("cono", "Company (CONO)", secret=False, default=100, clean=positive_int),
        FieldSpec(
            "divi",
            "Division (DIVI)",
            secret=False,
            required=False,
            help="Leave blank for company-level programs.",
        ),
        FieldSpec(
            "programs",
            "Program overrides",
            secret=False,
            required=False,
            clean=clean_programs,
            multiline=True,
            help="Only where this tenant differs from the M3 catalogue, one per line: "
            "need = PROGRAM/TRANSACTION (e.g. receipts.head = ARS040MI/AddBatchHead). "
            "Needs: " + ", ".join(DEFAULT_PROGRAMS) + ".",
        ),
        FieldSpec(
            "client_auth",
            "Client authentication",
            secret=False,
            default="basic",
            clean=lambda v: _choice(v, ("basic", "body")),
            help="How the client id and secret reach the token endpoint: basic (HTTP Basic, "
            "the usual) or body (form fields, for tenants that ask for it).",
        ),
        FieldSpec(
            "receipt_requests",
            "Requests per receipt batch",
            secret=False,
            default=1,
            clean=lambda v: int(_choice(v, ("1", "2"))),
            help="1: head, lines, charges and control in one bulk request (M3 runs them all; "
            "a line or fee it refuses in a batch it then controls is put in the review queue to "
            "add by hand). 2: the control in a second request, sent only when everything "
            "before it went through.",
        ),
        FieldSpec(
            "ap_coding",
            "AP invoice coding",
            secret=False,
            default="derived",
            clean=lambda v: _choice(v, ("derived", "journal")),
            help="derived: CloudSuite codes AP invoices itself (APS450MI takes no account); "
            "what it posted is read back and a difference from the mapping is flagged. "
            "journal: a tenant that codes per line: a GL journal (GLS840MI) then moves each line "
            "to its mapped accounting string.",
        ),
        FieldSpec(
            "journal_interface",
            "GL journal interface (GLS840 INTN)",
            secret=False,
            default="WISE",
            help="The interface type payments made outside CloudSuite (Wise) are journalled "
            "through.",
        ),
        FieldSpec(
            "journal_layout",
            "GL journal line layout",
            secret=False,
            default=DEFAULT_JOURNAL_LAYOUT,
            clean=clean_layout,
            help="The fixed-format record of that interface: FIELD:width, in order.",
        ),
        *http_settings(rate_per_minute=300),
    ),
)


def _choice(value: Any, allowed: tuple[str, ...]) -> str:
    value = str(value).strip().lower()
    if value not in allowed:
        raise ValidationError(f"Choose one of: {', '.join(allowed)}.")
    return value
