"""What an IFS projection's ``$metadata`` declares, and literals typed by it.

OData v4 (CSDL XML, OASIS "OData Common Schema Definition Language" and "URL Conventions"):
each entity set has an entity type with key properties and properties of EDM types, enum types
with members, and navigation properties to other types (``Collection(…)`` for many).  Key and
filter literals follow the property's type — ``Edm.String`` quoted (``'`` doubled), numbers,
``Edm.Date``, ``Edm.DateTimeOffset`` and GUIDs bare, enum members qualified
(``IfsApp.X.State'Posted'``) — so nothing is built from a guess.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

logger = logging.getLogger(__name__)

EDMX = "{http://docs.oasis-open.org/odata/ns/edmx}"
EDM = "{http://docs.oasis-open.org/odata/ns/edm}"
WHOLE = {"Edm.Byte", "Edm.SByte", "Edm.Int16", "Edm.Int32", "Edm.Int64"}
NUMBERS = {*WHOLE, "Edm.Decimal", "Edm.Double", "Edm.Single"}
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_GUID = re.compile(r"^[0-9A-Fa-f]{8}(-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}$")


class MetadataError(ValueError):
    """``$metadata`` that cannot be read, or a name or value it does not allow."""


@dataclass(frozen=True)
class EntitySet:
    """One entity set: its keys, properties (name → EDM type) and navigations."""

    name: str
    type_name: str
    keys: tuple[str, ...]
    properties: dict[str, str]
    navigations: dict[str, tuple[str, bool]] = field(default_factory=dict)  # → (type, many)
    enums: dict[str, tuple[str, ...]] = field(default_factory=dict)  # qualified → members

    def require(self, names: list[str] | tuple[str, ...], *, what: str) -> None:
        """Refuse, in plain words, a name this set does not declare (before any call)."""
        missing = [n for n in names if n not in self.properties]
        if missing:
            raise MetadataError(
                f"IFS's {self.name} has no field {', '.join(missing)} ({what}); its fields "
                f"are: {', '.join(sorted(self.properties)[:40])}. Check the field names on the "
                "connection."
            )

    def literal(self, name: str, value: Any) -> str:
        """``value`` as the literal of property ``name``'s type."""
        if name not in self.properties:
            self.require([name], what="a filter")
        return edm_literal(self.properties[name], value, self.enums)

    def collection_navigations(self) -> list[str]:
        return [name for name, (_, many) in self.navigations.items() if many]


def edm_literal(edm: str, value: Any, enums: dict[str, tuple[str, ...]] | None = None) -> str:
    """A URL literal of ``edm`` for ``value`` (``MetadataError`` when it cannot be one)."""
    if value is None:
        return "null"
    text = str(value).strip()
    if edm == "Edm.String":
        return "'" + str(value).replace("'", "''") + "'"
    if edm == "Edm.Boolean":
        if isinstance(value, bool) or text in ("true", "false"):
            return "true" if value in (True, "true") else "false"
        raise MetadataError(f"“{text[:40]}” is not true or false.")
    if edm in NUMBERS:
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise MetadataError(f"“{text[:40]}” is not a number, as IFS needs here.") from None
        if not number.is_finite() or (edm in WHOLE and number != number.to_integral_value()):
            raise MetadataError(f"“{text[:40]}” is not a number IFS accepts here.")
        return format(number, "f")
    if edm == "Edm.Date":
        if isinstance(value, datetime):
            return value.date().isoformat()
        if _DAY.match(text[:10]):
            return text[:10]
        raise MetadataError(f"“{text[:40]}” is not a date.")
    if edm == "Edm.DateTimeOffset":
        try:
            moment = (
                value
                if isinstance(value, datetime)
                else datetime.fromisoformat(text.replace("Z", "+00:00"))
            )
        except ValueError:
            raise MetadataError(f"“{text[:40]}” is not a date and time.") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)  # the cursor keeps UTC without a zone letter
        return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if edm == "Edm.Guid":
        if _GUID.match(text):
            return text
        raise MetadataError(f"“{text[:40]}” is not a GUID.")
    if enums and edm in enums:
        if text not in enums[edm]:
            raise MetadataError(f"“{text[:40]}” is not one of {', '.join(enums[edm])}.")
        return f"{edm}'{text}'"
    raise MetadataError(f"IFS declares a type ml-connector cannot write a value of ({edm}).")


def parse(document: bytes) -> dict[str, EntitySet]:
    """The entity sets a ``$metadata`` document declares (``MetadataError`` if unreadable)."""
    try:
        root = ElementTree.fromstring(document, forbid_dtd=True)
    except (ElementTree.ParseError, DefusedXmlException, ValueError) as exc:
        raise MetadataError(f"IFS's $metadata is not readable XML ({exc}).") from None
    if root.tag != f"{EDMX}Edmx":
        raise MetadataError("IFS's $metadata is not an OData CSDL document.")
    types: dict[str, tuple[tuple[str, ...], dict[str, str], dict[str, tuple[str, bool]]]] = {}
    enums: dict[str, tuple[str, ...]] = {}
    containers: list[tuple[str, str]] = []
    for schema in root.iter(f"{EDM}Schema"):
        namespace = schema.get("Namespace") or ""
        for enum in schema.findall(f"{EDM}EnumType"):
            members = tuple(m.get("Name") or "" for m in enum.findall(f"{EDM}Member"))
            enums[f"{namespace}.{enum.get('Name')}"] = members
        for entity in schema.findall(f"{EDM}EntityType"):
            keys = tuple(
                ref.get("Name") or "" for ref in entity.findall(f"{EDM}Key/{EDM}PropertyRef")
            )
            properties = {
                p.get("Name") or "": p.get("Type") or "" for p in entity.findall(f"{EDM}Property")
            }
            navigations = {}
            for nav in entity.findall(f"{EDM}NavigationProperty"):
                kind = nav.get("Type") or ""
                many = kind.startswith("Collection(")
                target = kind.removeprefix("Collection(").removesuffix(")")
                navigations[nav.get("Name") or ""] = (target, many)
            types[f"{namespace}.{entity.get('Name')}"] = (keys, properties, navigations)
        for container in schema.findall(f"{EDM}EntityContainer"):
            containers += [
                (s.get("Name") or "", s.get("EntityType") or "")
                for s in container.findall(f"{EDM}EntitySet")
            ]
    sets = {}
    for name, type_name in containers:
        if type_name not in types:
            continue
        keys, properties, navigations = types[type_name]
        sets[name] = EntitySet(name, type_name, keys, properties, navigations, enums)
    if not sets:
        raise MetadataError("IFS's $metadata declares no entity sets.")
    return sets


def type_of(sets: dict[str, EntitySet], qualified: str) -> EntitySet | None:
    """The entity set whose type is ``qualified`` (to read a navigation's target)."""
    return next((s for s in sets.values() if s.type_name == qualified), None)
