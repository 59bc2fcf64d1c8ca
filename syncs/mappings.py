"""Field mappings as the flows declare them: which kinds an integration reads, and whether a
mapping would be read and could be posted (the mapping form and the CSV import both ask here,
so an import refuses exactly what the form refuses).

A target value is checked through the capability of the connection that holds it (a chart of
accounts, a supplier directory), never by the name of the system.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from connections.models import Connection
from connections.providers import plain
from connections.providers.capabilities import ChartOfAccounts, SupplierDirectory
from connections.providers.errors import ApiError
from connections.providers.registry import capable, client_for, provider_class
from connections.services import quick
from syncs.flows import FLOWS
from syncs.flows.kinds import CHART, SUPPLIER, MappingKind, kinds_by_name
from syncs.models import FieldMapping, Integration

logger = logging.getLogger(__name__)

Cache = dict[tuple[int, str], Any]


def mapping_kind_label(name: str) -> str:
    """What a finance user calls a kind of mapping (its name when no flow declares it)."""
    kinds = kinds_by_name(FLOWS.values()).get(name)
    return kinds[0].label if kinds else name


def mapping_kind_help() -> list[tuple[str, str]]:
    """(label, help) of each kind, each flow's reading of it once."""
    lines = []
    for _name, kinds in sorted(kinds_by_name(FLOWS.values()).items(), key=lambda k: k[1][0].label):
        seen: list[str] = []
        for kind in kinds:
            if kind.help not in seen:
                seen.append(kind.help)
        lines.append((kinds[0].label, " — or — ".join(seen)))
    return lines


def declared_kind(integration: Integration, name: str) -> MappingKind | None:
    """How ``integration``'s flow reads mappings of kind ``name`` (None: it reads none)."""
    flow = FLOWS.get(integration.flow)
    return flow.mapping_kind(name) if flow else None


def readers(
    *, integration: Integration | None, connection: Connection | None, kind: str
) -> list[tuple[Integration, MappingKind]]:
    """The integrations that would read a mapping of ``kind`` owned by ``integration`` (or
    shared on ``connection``), each with how its flow reads it."""
    candidates = (
        [integration]
        if integration is not None
        else list(Integration.objects.filter(target=connection).order_by("pk"))
        if connection is not None
        else []
    )
    return [(i, k) for i in candidates if (k := declared_kind(i, kind)) is not None]


def mapping_kind_problem(
    *, integration: Integration | None, connection: Connection | None, kind: str
) -> str:
    """Why no integration would read a mapping of ``kind`` here ("" when one would)."""
    if readers(integration=integration, connection=connection, kind=kind):
        return ""
    label = mapping_kind_label(kind)
    if integration is not None:
        flow = FLOWS.get(integration.flow)
        kinds = ", ".join(k.label for k in flow.mapping_kinds) if flow else ""
        return f"{integration.name} reads no “{label}” mappings" + (
            f"; it reads: {kinds}." if kinds else "; it reads no mappings at all."
        )
    return f"No integration posting to {connection} reads “{label}” mappings."


def mapping_source_problem(
    *, integration: Integration | None, connection: Connection | None, kind: str, source: str
) -> str:
    """Why a mapping with this source value would never be read ("" when it would)."""
    found = readers(integration=integration, connection=connection, kind=kind)
    problems = [k.source_problem(source) for _, k in found]
    return "" if not found or "" in problems else problems[0]


def mapping_target_problem(
    *,
    integration: Integration,
    kind: str,
    target_value: str,
    charts: Cache | None = None,
) -> str:
    """Why ``target_value`` cannot be the target of a mapping of ``kind`` for ``integration``
    ("" when it can, when nothing checks it, or when the system could not be asked within a
    few seconds: the run checks again).  ``charts`` keeps what was read across the rows of a
    file."""
    declared = declared_kind(integration, kind)
    value = target_value.strip()
    if declared is None or not declared.check or not value:
        return ""
    holder = integration.target
    system = plain.system_name(provider_class(holder.kind))
    if declared.check == CHART and capable(holder.kind, ChartOfAccounts):
        account = value.split(";")[0].strip()
        chart = _asked(holder, "chart", lambda c: c.chart_of_accounts(), charts)
        if chart is None or account in chart:
            return ""
        return (
            f"Account {account} is not in {system}'s chart of accounts ({holder.name}): check "
            f"the number, or add the account in {system} first."
        )
    if declared.check == SUPPLIER and capable(holder.kind, SupplierDirectory):
        found = _asked(holder, f"supplier:{value}", lambda c: c.suppliers_found([value]), charts)
        if found is None or value in found:
            return ""
        return (
            f"Supplier {value} does not exist in {system} ({holder.name}): check the supplier "
            f"number, or add the supplier in {system} first."
        )
    return ""


def _asked(
    connection: Connection, what: str, ask: Callable[[Any], Any], cache: Cache | None
) -> Any:
    """What ``connection`` answered (None when it could not be asked), once per ``cache``."""
    cache = cache if cache is not None else {}
    key = (connection.pk, what)
    if key not in cache:
        client = client_for(quick(connection))
        try:
            cache[key] = ask(client)
        except ApiError:
            logger.info("%s could not be asked about %s", connection.slug, what)
            cache[key] = None
        finally:
            client.close()
    return cache[key]


def gl_mappings_check(*, integration: Integration) -> tuple[list[str], list[str]]:
    """Compare the integration's mappings of kinds checked against a chart with the chart of
    the connection that holds them.  Returns (known, unknown) as readable lines; only the
    first accounting dimension is checked, since a chart lists accounts by it."""
    flow = FLOWS.get(integration.flow)
    names = [k.name for k in (flow.mapping_kinds if flow else ()) if k.check == CHART]
    holder = integration.target
    if not names or not capable(holder.kind, ChartOfAccounts):
        return [], ["This integration posts no accounts that a chart of accounts holds."]
    client = client_for(holder)
    try:
        chart = client.chart_of_accounts()  # type: ignore[attr-defined]
    finally:
        client.close()
    system = plain.system_name(provider_class(holder.kind))
    known, unknown = [], []
    for mapping in FieldMapping.for_integration(integration).filter(kind__in=names):
        account = mapping.target_value.split(";")[0].strip()
        if account in chart:
            known.append(f"{mapping.source_value} → {account} ({chart[account]})")
        else:
            unknown.append(f"{mapping.source_value} → {account}: not in the {system} chart")
    return known, unknown
