"""Wise's recipient form (its account requirements) filled from a supplier's values — pure.

``GET /v1/account-requirements`` (v1.1) answers the recipient types Wise offers for a route,
each a list of ``fields[].group[]`` with ``key`` (dotted for nested data: ``address.city``),
``name``, ``required``, ``minLength``, ``maxLength``, ``validationRegexp`` and
``valuesAllowed[].key`` (docs.wise.com/api-reference/recipient, "Retrieve recipient account
requirements dynamically").  Wise says the fields "are subject to change" and an integration
must handle unknown ones, so nothing here lists a currency's fields: a required key the
integration has no value for is named to the user, in Wise's own words where no plainer ones
are known.

``build`` picks the first type the supplier's values fill completely (in Wise's order); when none
does, the problems of the type that came closest (fewest missing or invalid bank fields, then
fewest in all) are returned, so the user hears what one fix would make it payable.  The body is
the ``POST /v1/accounts`` request: ``accountHolderName`` at the top, everything else under
``details`` (``address.city`` → ``details.address.city``).  Values are looked up by key without
regard to case (Wise writes ``IBAN`` in one place and ``iban`` in another).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

TOP_LEVEL = {"accountholdername"}  # POST /v1/accounts takes these beside ``details``
# Fields Wise adds to the form once a field marked ``refreshRequirementsOnChange`` is set (its
# example: a US ``address.country`` brings ``address.state``).  Learning them means posting the
# form again against a quote; instead a value CloudSuite has for one is sent with its parent
# (``address.state`` is a documented recipient address field: "State (US, Canada, Brazil)"), and
# a missing one Wise names in its refusal (``path``).
DEPENDENTS = {"address.country": ("address.state",)}
# Plainer words than Wise's form labels for the fields finance users meet most.
PLAIN = {
    "accountholdername": "name",
    "legaltype": "legal type (business or private)",
    "iban": "IBAN",
    "bic": "BIC",
    "swiftcode": "BIC (SWIFT code)",
    "sortcode": "sort code",
    "accountnumber": "account number",
    "abartn": "ACH routing number",
    "accounttype": "account type (checking or savings)",
    "address.firstline": "address line 1",
    "address.city": "city",
    "address.postcode": "post code",
    "address.country": "country",
    "address.state": "state",
    "email": "email address",
    "dateofbirth": "date of birth",
}


@dataclass(frozen=True)
class FormField:
    key: str
    name: str
    required: bool
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    allowed: tuple[str, ...] | None = None

    @property
    def plain(self) -> str:
        return PLAIN.get(self.key.lower(), self.name or self.key)

    @property
    def is_address(self) -> bool:
        return self.key.lower().startswith("address.")


@dataclass(frozen=True)
class RecipientType:
    type: str
    title: str
    fields: tuple[FormField, ...]


@dataclass(frozen=True)
class Problem:
    field: FormField
    missing: bool  # no value (else: a value Wise would refuse)
    detail: str = ""


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse(requirements: list[dict[str, Any]]) -> list[RecipientType]:
    """Wise's answer as recipient types (anything it adds that is not a field is left out)."""
    types = []
    for entry in requirements:
        fields: dict[str, FormField] = {}
        for field in entry.get("fields") or ():
            if not isinstance(field, dict):
                continue
            for item in field.get("group") or ():
                if not isinstance(item, dict) or not isinstance(item.get("key"), str):
                    continue
                allowed = item.get("valuesAllowed")
                keys = (
                    tuple(
                        str(v.get("key")) for v in allowed if isinstance(v, dict) and v.get("key")
                    )
                    if isinstance(allowed, list)
                    else None
                )
                pattern = item.get("validationRegexp")
                fields[item["key"]] = FormField(
                    key=item["key"],
                    name=str(item.get("name") or field.get("name") or item["key"]),
                    required=bool(item.get("required")),
                    min_length=_int(item.get("minLength")),
                    max_length=_int(item.get("maxLength")),
                    pattern=pattern if isinstance(pattern, str) and pattern else None,
                    allowed=keys or None,
                )
        types.append(
            RecipientType(str(entry["type"]), str(entry.get("title") or ""), tuple(fields.values()))
        )
    return types


def _check(field: FormField, value: str) -> str:
    """Why Wise would refuse ``value`` for ``field`` ("" when it would not)."""
    if field.allowed is not None and value.upper() not in {a.upper() for a in field.allowed}:
        return f"“{value}” is not one Wise accepts"
    if field.min_length is not None and len(value) < field.min_length:
        return f"“{value}” is shorter than the {field.min_length} characters Wise needs"
    if field.max_length is not None and len(value) > field.max_length:
        return f"it is longer than the {field.max_length} characters Wise takes"
    if field.pattern:
        try:
            matches = re.search(field.pattern, value) is not None
        except re.error:  # a pattern Python cannot read: Wise checks it on creation
            logger.info("Wise pattern for %s not readable here: %s", field.key, field.pattern)
            return ""
        if not matches:
            return f"“{value}” is not in the form Wise takes"
    return ""


def fill(rtype: RecipientType, values: Mapping[str, str]) -> tuple[dict[str, Any], list[Problem]]:
    """The ``POST /v1/accounts`` body of this type from ``values`` (by lower-case key), and what
    keeps it from being sent (empty when nothing does)."""
    body: dict[str, Any] = {"type": rtype.type, "details": {}}
    problems = []
    # An address the form offers but does not require is sent whole or not at all (a country on
    # its own is no address).
    optional = [f for f in rtype.fields if f.is_address and not f.required]
    if optional and not any(f.is_address and f.required for f in rtype.fields):
        whole = all(values.get(k) for k in ("address.firstline", "address.city", "address.country"))
        if not whole:
            values = {k: v for k, v in values.items() if not k.startswith("address.")}
    for field in rtype.fields:
        value = str(values.get(field.key.lower()) or "").strip()
        if not value:
            if field.required:
                problems.append(Problem(field, missing=True))
            continue
        if field.allowed is not None:  # Wise's own spelling of an allowed value
            value = next((a for a in field.allowed if a.upper() == value.upper()), value)
        if why := _check(field, value):
            problems.append(Problem(field, missing=False, detail=why))
            continue
        if field.key.lower() in TOP_LEVEL:
            body[field.key] = value
            continue
        place = body["details"]
        *parents, leaf = field.key.split(".")
        for parent in parents:
            place = place.setdefault(parent, {})
        place[leaf] = value
        for dependent in DEPENDENTS.get(field.key.lower(), ()):
            extra = str(values.get(dependent) or "").strip()
            listed = any(f.key.lower() == dependent for f in rtype.fields)
            if extra and not listed:
                *parents, leaf = dependent.split(".")
                place = body["details"]
                for parent in parents:
                    place = place.setdefault(parent, {})
                place[leaf] = extra
    return body, problems


def _rank(problems: list[Problem]) -> tuple[int, int]:
    return (sum(1 for p in problems if not p.field.is_address), len(problems))


def build(
    types: list[RecipientType], values: Mapping[str, str]
) -> tuple[RecipientType | None, dict[str, Any], list[Problem]]:
    """The first type ``values`` fill (its body, no problems), or the closest one's problems."""
    best: tuple[RecipientType, dict[str, Any], list[Problem]] | None = None
    for rtype in types:
        body, problems = fill(rtype, values)
        if not problems:
            return rtype, body, []
        if best is None or _rank(problems) < _rank(best[2]):
            best = (rtype, body, problems)
    if best is None:
        return None, {}, []
    return best


def address_keys(types: list[RecipientType]) -> list[str]:
    """The address fields any of these types requires (lower case, in Wise's order)."""
    keys: dict[str, None] = {}
    for rtype in types:
        for field in rtype.fields:
            if field.is_address and field.required:
                keys.setdefault(field.key.lower())
    return list(keys)
