"""Infor CloudSuite (M3) through the ION API gateway: MI programs, single and bulk.

Auth comes from the connection's ``.ionapi`` file (password grant, refresh, re-auth on 401);
the file is validated when it is uploaded, so here it is read as stored.
Single calls are ``GET execute/{PROGRAM}/{TRANSACTION};maxrecs=…;returncols=…?CONO=…&FIELD=…``;
the bulk ``POST execute`` carries many transactions in one request, which counts once against
the rate limit.  M3 reports errors as HTTP 200 with ``errorMessage``: they become ``MIError``
(a ``Rejected``).  Values are trimmed.  Program and transaction names are connection settings
(``programs``) with the catalogue's defaults, because tenants differ.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from connections.providers.base import CheckResult, HttpProvider
from connections.providers.errors import ApiError, Rejected
from connections.providers.http import ClientConfig
from connections.providers.infor_m3.credentials import DEFAULT_PROGRAMS, SPEC
from connections.providers.infor_m3.ionapi import IonApi
from connections.providers.oauth import Grant

logger = logging.getLogger(__name__)

API_PATH = "M3/m3api-rest/v2/execute"
PAGE_SIZE = 500
ALREADY_EXISTS = ("already exists", "already updated")


class MIError(Rejected):
    """An MI transaction refused its input."""

    def __init__(self, message: str, *, transaction: str, field: str = "", code: str = "") -> None:
        super().__init__(
            f"{transaction}: {message}",
            detail={"field": field, "code": code},
            remote_message=message,
        )
        self.field, self.code, self.mi_message = field, code, message

    @property
    def already_exists(self) -> bool:
        return any(s in self.mi_message.lower() for s in ALREADY_EXISTS)

    @property
    def already_updated(self) -> bool:
        """The batch was controlled (updated) already: nothing can be added to it."""
        return "already updated" in self.mi_message.lower()


@dataclass(frozen=True)
class MIResult:
    """One transaction's outcome in a bulk call."""

    transaction: str
    records: list[dict[str, str]]
    error: MIError | None = None


def _trim(record: Mapping[str, Any]) -> dict[str, str]:
    return {k: (v.strip() if isinstance(v, str) else v) for k, v in record.items()}


class InforM3(HttpProvider):
    """An M3 tenant's MI programs, on the shared HTTP core."""

    kind = "infor_m3"
    label = "Infor CloudSuite (M3)"
    short_label = "CloudSuite"
    keeps_books = True
    spec = SPEC
    secret_keys = ("ci", "cs", "saak", "sask")  # the .ionapi file's secret keys
    secret_patterns = (
        (re.compile(r"(?i)\b(saak|sask)(\"?\s*[=:]\s*\"?)([^&\s\",}]+)"), r"\1\2***"),
    )

    @property
    def ionapi(self) -> IonApi:
        return IonApi(values=dict(self.connection.credentials))

    def client_config(self) -> ClientConfig:
        base = self.ionapi.gateway_url.rstrip("/") + "/" + API_PATH + "/"
        return ClientConfig.from_connection(self.connection, base_url=base)

    def grant(self) -> Grant:
        """The ION API service-account (password) grant of the ``.ionapi`` file."""
        v = self.ionapi.values
        return Grant(
            token_url=self.ionapi.token_url,
            client_id=v["ci"],
            client_secret=v["cs"],
            form={"grant_type": "password", "username": v["saak"], "password": v["sask"]},
            client_auth=self.connection.setting("client_auth", "basic"),
        )

    @property
    def cono(self) -> int:
        return int(self.connection.setting("cono", 100))

    @property
    def divi(self) -> str:
        return str(self.connection.setting("divi") or "")

    def program(self, need: str) -> tuple[str, str]:
        """The (program, transaction) configured for ``need``."""
        override = (self.connection.settings or {}).get("programs", {}).get(need)
        if override:
            program, _, transaction = str(override).partition("/")
            return program, transaction
        return DEFAULT_PROGRAMS[need]

    # -- MI calls ---------------------------------------------------------------------------

    def execute(
        self,
        need: str,
        fields: Mapping[str, Any] | None = None,
        *,
        maxrecs: int | None = None,
        returncols: Sequence[str] | None = None,
        write: bool = False,
    ) -> list[dict[str, str]]:
        """One MI transaction; returns its trimmed records or raises ``MIError``."""
        program, transaction = self.program(need)
        matrix = f";maxrecs={maxrecs}" if maxrecs is not None else ""
        if returncols:
            matrix += ";returncols=" + ",".join(returncols)
        params = {"CONO": self.cono, **({"DIVI": self.divi} if self.divi else {})}
        params.update({k: v for k, v in (fields or {}).items() if v not in (None, "")})
        response = self.http.get(
            f"{quote(program)}/{quote(transaction)}{matrix}",
            params=params,
            idempotent=not write,
        )
        (result,) = self._results(response.json(), [transaction])
        if result.error:
            raise result.error
        return result.records

    def execute_bulk(
        self,
        need: str,
        records: Sequence[Mapping[str, Any]],
        *,
        write: bool = False,
        returncols: Sequence[str] | None = None,
        maxrecs: int | None = None,
    ) -> list[MIResult]:
        """Many calls of one transaction in one request (one unit of the rate limit)."""
        return self.execute_steps(
            [(need, record) for record in records],
            write=write,
            returncols=returncols,
            maxrecs=maxrecs,
        )

    def execute_steps(
        self,
        steps: Sequence[tuple[str, Mapping[str, Any]]],
        *,
        write: bool = False,
        returncols: Sequence[str] | None = None,
        maxrecs: int | None = None,
    ) -> list[MIResult]:
        """Transactions of one program in one bulk request, in order, one result each.  M3 runs
        every transaction of the request whatever the ones before it answered."""
        if not steps:
            return []
        named = [self.program(need) for need, _ in steps]
        programs = {program for program, _ in named}
        if len(programs) != 1:
            raise ValueError(f"one bulk request takes one program, not {sorted(programs)}")
        body = {
            "program": named[0][0],
            "cono": self.cono,
            "transactions": [
                {
                    "transaction": transaction,
                    "record": {k: str(v) for k, v in record.items() if v not in (None, "")},
                    **({"selectedColumns": list(returncols)} if returncols else {}),
                }
                for (_, transaction), (_, record) in zip(named, steps, strict=True)
            ],
        }
        if maxrecs is not None:  # per transaction of the request
            body["maxReturnedRecords"] = maxrecs
        params = {"cono": self.cono, "extendedresult": "true", "righttrim": "true"}
        if self.divi:
            params["divi"] = self.divi
        response = self.http.post("", params=params, json=body, idempotent=not write)
        return self._results(response.json(), [transaction for _, transaction in named])

    def _results(self, payload: Any, expected: list[str]) -> list[MIResult]:
        results = payload.get("results") if isinstance(payload, dict) else None
        if not isinstance(results, list) or len(results) != len(expected):
            raise ApiError("M3 answered something that is not an MI v2 response.")
        out = []
        for item, transaction in zip(results, expected, strict=True):
            if item.get("errorMessage"):
                error = MIError(
                    str(item["errorMessage"]).strip(),
                    transaction=transaction,
                    field=str(item.get("errorField") or ""),
                    code=str(item.get("errorCode") or ""),
                )
                out.append(MIResult(transaction, [], error))
            else:
                out.append(MIResult(transaction, [_trim(r) for r in item.get("records") or []]))
        return out

    # -- domain -----------------------------------------------------------------------------

    def list_customers(
        self,
        *,
        changed_since: int | None = None,
        first: str = "",
        last: str = "",
        before: str = "",
    ) -> Iterator[dict[str, str]]:
        """Customers changed at or after ``changed_since`` (LMTS), paged by customer number,
        from ``first`` to ``last`` (inclusive) or up to ``before`` (exclusive); blank: no
        bound."""
        start = first
        while True:
            page = self.execute(
                "customers.list", {"CUNO": start, "LMTS": changed_since}, maxrecs=PAGE_SIZE
            )
            for record in page:
                if (last and record["CUNO"] > last) or (before and record["CUNO"] >= before):
                    return
                if record["CUNO"] != start or start == first:
                    yield record
            if len(page) < PAGE_SIZE:
                return
            start = page[-1]["CUNO"]

    def list_accounts(self, *, dimension: int = 1) -> list[dict[str, str]]:
        """The chart of accounts (accounting dimension ``dimension``, AITP)."""
        return self.execute("accounts.list", {"AITP": dimension}, maxrecs=0)

    def chart_of_accounts(self) -> dict[str, str]:
        """Capability ``ChartOfAccounts``: each account of dimension 1 with its name (TX40)."""
        return {str(a.get("AITM")): str(a.get("TX40") or "") for a in self.list_accounts()}

    def suppliers_found(self, numbers: Sequence[str]) -> set[str]:
        """Capability ``SupplierDirectory``: which of these suppliers CloudSuite holds."""
        return set(self.get_suppliers(list(numbers)))

    def customer_numbers(
        self, *, first: str = "", last: str = "", before: str = ""
    ) -> Iterator[list[str]]:
        """Customer numbers from ``first`` to ``last`` (or ``before``), a page at a time."""
        page: list[str] = []
        for customer in self.list_customers(first=first, last=last, before=before):
            page.append(customer["CUNO"])
            if len(page) >= PAGE_SIZE:
                yield page
                page = []
        if page:
            yield page

    def list_invoice_entries(
        self,
        *,
        since_date: str | None = None,
        per_request: int = 50,
        first_customer: str = "",
        last_customer: str = "",
        before_customer: str = "",
    ) -> Iterator[list[dict[str, str]]]:
        """AR ledger entries of the connection's division, read by key range — customer by
        customer, ``per_request`` customers in one bulk request — so no grid cap is ever met and
        memory holds one slice at a time.  Yields each slice's entries.  ``first_customer`` and
        ``last_customer`` bound the customers read (a share of the ledger for one worker)."""
        division = self.divi
        for numbers in self.customer_numbers(
            first=first_customer, last=last_customer, before=before_customer
        ):
            for start in range(0, len(numbers), per_request):
                chunk = numbers[start : start + per_request]
                yield self._entries_of(chunk, division=division, since_date=since_date)

    def _entries_of(
        self, customers: Sequence[str], *, division: str, since_date: str | None
    ) -> list[dict[str, str]]:
        """``LstInvByDivi`` for each customer (positive ``maxrecs``); a customer whose answer
        fills the page may have more, so it is read again from the last invoice date it
        returned (inclusive, de-duplicated) until an answer is short."""
        entries: list[dict[str, str]] = []
        pending = {cuno: since_date or "" for cuno in customers}
        seen: set[tuple[str, str, str]] = set()
        while pending:
            numbers = list(pending)
            results = self.execute_bulk(
                "invoices.list",
                [
                    {"FDIV": division, "TDIV": division, "CUNO": n, "IVDT": pending[n]}
                    for n in numbers
                ],
                maxrecs=PAGE_SIZE,
            )
            again: dict[str, str] = {}
            for number, result in zip(numbers, results, strict=True):
                if result.error is not None:
                    raise result.error
                fresh = [r for r in result.records if (r["YEA4"], r["JRNO"], r["JSNO"]) not in seen]
                seen.update((r["YEA4"], r["JRNO"], r["JSNO"]) for r in fresh)
                entries += fresh
                if len(result.records) >= PAGE_SIZE:
                    if not fresh:
                        logger.warning(
                            "Customer %s has more than %s AR entries on invoice date %s: the "
                            "rest cannot be read by this key range",
                            number,
                            PAGE_SIZE,
                            pending[number],
                        )
                        continue
                    again[number] = max(r["IVDT"] for r in result.records)
            pending = again
        return entries

    def _customer_entries(self, customer: str) -> list[dict[str, str]]:
        """All AR entries of one customer (any division), read past the grid cap."""
        entries: list[dict[str, str]] = []
        seen: set[tuple[str, str, str]] = set()
        since = ""
        while True:
            page = self.execute(
                "invoices.list_by_customer", {"CUNO": customer, "IVDT": since}, maxrecs=PAGE_SIZE
            )
            fresh = [r for r in page if (r["YEA4"], r["JRNO"], r["JSNO"]) not in seen]
            seen.update((r["YEA4"], r["JRNO"], r["JSNO"]) for r in fresh)
            entries += fresh
            if len(page) < PAGE_SIZE or not fresh:
                return entries
            since = max(r["IVDT"] for r in page)

    def get_invoices(self, keys: Sequence[tuple[str, str, str]]) -> list[dict[str, str] | None]:
        """GetInvoice for many (YEA4, JRNO, JSNO) keys in one bulk request."""
        results = self.execute_bulk(
            "invoices.get", [{"YEA4": y, "JRNO": j, "JSNO": s} for y, j, s in keys]
        )
        return [r.records[0] if r.records else None for r in results]

    def invoice_open_amount(self, *, customer: str, invoice: str, year: str) -> Decimal | None:
        """What is still open on an AR invoice: its amount less every receipt posted against it
        (the customer's AR entries for that invoice, summed).  None when M3 has no such invoice
        or gives no amount for it."""
        entries = [
            e
            for e in self._customer_entries(customer)
            if e.get("CINO") == invoice and str(e.get("INYR", "")) == str(year)
        ]
        if not any(e.get("TRCD") == "10" for e in entries):
            return None
        details = self.get_invoices([(e["YEA4"], e["JRNO"], e["JSNO"]) for e in entries])
        try:
            return sum((Decimal(str(d["CUAM"]).strip()) for d in details if d), Decimal(0))
        except (KeyError, ArithmeticError, ValueError):
            return None

    def invoice_open_amounts(
        self, invoices: Sequence[tuple[str, str, str]]
    ) -> dict[tuple[str, str, str], Decimal | None]:
        """``invoice_open_amount`` for many (customer, invoice, year) at once: the customers'
        AR entries in one bulk request (a customer whose page may be cut is read on, past the
        grid cap) and the entries' amounts in a second — two requests for a hundred invoices
        rather than two each.  An invoice whose customer M3 refused to list is left out (ask
        it on its own, to see why)."""
        wanted = {(str(c), str(i), str(y)) for c, i, y in invoices}
        customers = sorted({c for c, _, _ in wanted})
        entries: dict[str, list[dict[str, str]]] = {}
        pages = self.execute_bulk(
            "invoices.list_by_customer",
            [{"CUNO": c, "IVDT": ""} for c in customers],
            maxrecs=PAGE_SIZE,
        )
        for customer, page in zip(customers, pages, strict=True):
            if page.error is None:
                full = len(page.records) >= PAGE_SIZE
                entries[customer] = self._customer_entries(customer) if full else page.records
        of: dict[tuple[str, str, str], list[dict[str, str]]] = {}
        for customer, rows in entries.items():
            for row in rows:
                key = (customer, row.get("CINO", ""), str(row.get("INYR", "")))
                if key in wanted:
                    of.setdefault(key, []).append(row)
        known = [k for k in sorted(wanted) if any(e.get("TRCD") == "10" for e in of.get(k, []))]
        keys = [(e["YEA4"], e["JRNO"], e["JSNO"]) for k in known for e in of[k]]
        details = dict(zip(keys, self.get_invoices(keys), strict=True)) if keys else {}
        found: dict[tuple[str, str, str], Decimal | None] = {
            k: None for k in wanted if k[0] in entries
        }
        for key in known:
            try:
                found[key] = sum(
                    (
                        Decimal(str(d["CUAM"]).strip())
                        for e in of[key]
                        if (d := details.get((e["YEA4"], e["JRNO"], e["JSNO"])))
                    ),
                    Decimal(0),
                )
            except (KeyError, ArithmeticError, ValueError):
                found[key] = None
        return found

    def add_receipt(
        self,
        *,
        batch: int,
        batch_type: str,
        lines: Sequence[Mapping[str, Any]],
        charges: Sequence[Mapping[str, Any]] = (),
        bank_account: str = "",
        accounting_date: str = "",
    ) -> dict[str, Any]:
        """Post a customer payment batch: head, lines, charges and control in one bulk request
        (or, with the connection setting ``receipt_requests`` = 2, the control in a second one,
        sent only when everything before it went through).

        Head, lines and control can be sent again for the same ``batch``: M3 answers "already
        exists" (or "already updated") for what an earlier attempt did.  A charge has no key M3
        could recognise, so it must never be sent twice to one batch: after an interrupted
        attempt, ask ``receipt_batch_state`` first and post a batch with charges afresh under a
        new number unless it is absent.
        """
        entries, control = self._receipt_steps(
            batch, batch_type, lines, charges, bank_account, accounting_date
        )
        if int(self.connection.setting("receipt_requests", 1)) >= 2:
            # What makes up the batch, then — only when all of it went through — the control.
            done = self._steps_done(entries)
            done += self._steps_done([control])
            return {"batch": batch, "steps": done, "requests": 2, "refused": []}
        # One request: M3 runs every transaction of a bulk request in order, whatever the ones
        # before it answered.  A refused line or charge with a control that went through means
        # the batch was posted without it: reported (``refused``) for a person to complete by
        # hand, never posted again.  A refused control means nothing was posted.
        steps = [*entries, control]
        outcome = self._receipt_outcome(batch, steps, self._run_steps(steps))
        if isinstance(outcome, MIError):
            raise outcome
        outcome["requests"] = 1 if len({self.program(n)[0] for n, _ in steps}) == 1 else len(steps)
        return outcome

    def add_receipts(
        self, receipts: Sequence[Mapping[str, Any]]
    ) -> list[dict[str, Any] | Exception]:
        """Many ``add_receipt`` calls (each a mapping of its keyword arguments) in one bulk
        request, each batch judged on its own: one outcome, or the MIError that kept it from
        being posted, per receipt.  Where the steps cannot share one request (the setting
        ``receipt_requests`` = 2, or a tenant's overrides that split ARS040MI) each receipt is
        posted on its own."""
        planned = [
            (
                int(r["batch"]),
                *self._receipt_steps(
                    int(r["batch"]),
                    r["batch_type"],
                    r["lines"],
                    r.get("charges", ()),
                    r.get("bank_account", ""),
                    r.get("accounting_date", ""),
                ),
            )
            for r in receipts
        ]
        steps = [step for _, entries, control in planned for step in (*entries, control)]
        one_request = len({self.program(n)[0] for n, _ in steps}) == 1
        if (
            len(receipts) <= 1
            or not one_request
            or int(self.connection.setting("receipt_requests", 1)) >= 2
        ):
            found: list[dict[str, Any] | Exception] = []
            for receipt in receipts:
                try:
                    found.append(self.add_receipt(**receipt))
                except MIError as exc:
                    found.append(exc)
            return found
        results = iter(self.execute_steps(steps, write=True))
        outcomes: list[dict[str, Any] | Exception] = []
        for batch, entries, control in planned:
            own = [*entries, control]
            outcome = self._receipt_outcome(batch, own, [next(results) for _ in own])
            if not isinstance(outcome, Exception):
                outcome["requests"] = 1
                outcome["with_others"] = len(receipts) - 1
            outcomes.append(outcome)
        return outcomes

    @staticmethod
    def _receipt_steps(
        batch: int,
        batch_type: str,
        lines: Sequence[Mapping[str, Any]],
        charges: Sequence[Mapping[str, Any]],
        bank_account: str,
        accounting_date: str,
    ) -> tuple[list[tuple[str, Mapping[str, Any]]], tuple[str, Mapping[str, Any]]]:
        head = {"PBID": batch, "BOPE": batch_type, "BAAN": bank_account, "ACDT": accounting_date}
        entries: list[tuple[str, Mapping[str, Any]]] = [
            ("receipts.head", head),
            *(("receipts.line", {"PBID": batch, **line}) for line in lines),
            *(("receipts.charge", {"PBID": batch, **charge}) for charge in charges),
        ]
        return entries, ("receipts.control", {"PBID": batch})

    def _receipt_outcome(
        self,
        batch: int,
        steps: Sequence[tuple[str, Mapping[str, Any]]],
        results: Sequence[MIResult],
    ) -> dict[str, Any] | MIError:
        """What M3's answers to one batch's steps mean: posted (with what it refused), or the
        refusal that kept it from being posted."""
        done, refused = [], []
        for (need, _), result in zip(steps, results, strict=True):
            if result.error is None:
                done.append(need)
            elif result.error.already_exists:
                done.append(f"{need} (already done)")
            else:
                refused.append((need, result.error))
        if any(need == "receipts.control" for need, _ in refused):
            return refused[0][1]  # the first refusal says best why nothing was posted
        return {
            "batch": batch,
            "steps": done,
            "refused": [f"{self.program(need)[1]}: {err.mi_message}" for need, err in refused],
        }

    def _run_steps(self, steps: Sequence[tuple[str, Mapping[str, Any]]]) -> list[MIResult]:
        """``steps`` in one request when they share a program, else one request each (a
        tenant's overrides can split them)."""
        if len({self.program(need)[0] for need, _ in steps}) == 1:
            return self.execute_steps(steps, write=True)
        return [self.execute_steps([step], write=True)[0] for step in steps]

    def _steps_done(self, steps: Sequence[tuple[str, Mapping[str, Any]]]) -> list[str]:
        """Send ``steps`` (in one request when they share a program); "already exists" counts
        as done by an earlier attempt; any other refusal is raised (the first one)."""
        results = self._run_steps(steps)
        done = []
        for (need, _), result in zip(steps, results, strict=True):
            if result.error is None:
                done.append(need)
            elif result.error.already_exists:
                done.append(f"{need} (already done)")
            else:
                raise result.error
        return done

    def receipt_batch_state(
        self,
        *,
        batch: int,
        batch_type: str,
        first_line: Mapping[str, Any],
        bank_account: str = "",
        accounting_date: str = "",
    ) -> str:
        """What an earlier, interrupted ``add_receipt`` left of ``batch``, without adding
        anything M3 cannot de-duplicate: ``"updated"`` (controlled: the receipt is posted),
        ``"open"`` (head and first line there, not controlled: nothing is in the ledger yet) or
        ``"absent"``.

        ARS040MI has no read transaction, so the probe re-sends the head and the first line,
        which M3 answers "already exists" — or, for a controlled batch, "already updated" — and
        which are harmless when they do go through: the batch is completed or abandoned next.
        (The wording of M3's answers is matched as the catalogue gives it: unverified.)
        """
        try:
            self.execute(
                "receipts.head",
                {"PBID": batch, "BOPE": batch_type, "BAAN": bank_account, "ACDT": accounting_date},
                write=True,
            )
            return "absent"
        except MIError as exc:
            if not exc.already_exists:
                raise
        try:
            self.execute("receipts.line", {"PBID": batch, **first_line}, write=True)
        except MIError as exc:
            if exc.already_updated:
                return "updated"
            if not exc.already_exists:
                raise
        return "open"

    # -- suppliers and AP ------------------------------------------------------------------

    def list_suppliers(
        self, *, changed_since: int | None = None, first: str = "", last: str = ""
    ) -> Iterator[dict[str, str]]:
        """Suppliers changed at or after ``changed_since`` (LMTS), paged by supplier number
        (``FRSU``/``TOSU``), a positive ``maxrecs`` a page so a capped grid hides nothing."""
        start = first
        while True:
            page = self.execute(
                "suppliers.list",
                {"FRSU": start, "TOSU": last, "LMTS": changed_since},
                maxrecs=PAGE_SIZE,
            )
            for record in page:
                if record["SUNO"] != start or start == first:
                    yield record
            if len(page) < PAGE_SIZE:
                return
            start = page[-1]["SUNO"]

    def get_suppliers(self, numbers: Sequence[str]) -> dict[str, dict[str, str]]:
        """GetBasicData for many suppliers in one bulk request; missing ones are left out."""
        if not numbers:
            return {}
        results = self.execute_bulk("suppliers.get", [{"SUNO": n} for n in numbers])
        return {n: r.records[0] for n, r in zip(numbers, results, strict=True) if r.records}

    def search_supplier_invoices(self, query: str) -> list[dict[str, str]]:
        """Supplier invoices matching an APS200MI search query, each with its full record
        (GetInvoice, many in one bulk request)."""
        keys = self.execute("supplier_invoices.search", {"SQRY": query}, maxrecs=0)
        if not keys:
            return []
        results = self.execute_bulk(
            "supplier_invoices.get",
            [{"YEA4": k["YEA4"], "JRNO": k["JRNO"], "JSNO": k["JSNO"]} for k in keys],
        )
        return [r.records[0] for r in results if r.records]

    def add_ap_invoices(
        self, invoices: Sequence[Mapping[str, Any]]
    ) -> list[tuple[str | None, MIError | None]]:
        """Supplier invoice batches: every head in one bulk request, then every line of the
        heads M3 took in a second, then ``ValidByBatchNo`` for the batches whose lines all went
        through in a third — a file of a thousand invoices is a few requests per chunk, not
        thousands.  Each invoice is ``{"head": {...}, "lines": [{...}, ...]}``; the answer is
        one (batch number, refusal) per invoice: a refused head, line or validation is that
        invoice's refusal (its batch, if made, is left unvalidated: it has no accounting
        effect), and the others go on.  The head's ``CORI`` should carry the caller's key, so
        an interrupted post is found again (``find_ap_invoice``)."""
        heads = self.execute_bulk("ap_invoices.head", [i["head"] for i in invoices], write=True)
        out: list[tuple[str | None, MIError | None]] = []
        for result in heads:
            if result.error:
                out.append((None, result.error))
            else:
                out.append((str(result.records[0].get("INBN") if result.records else ""), None))
        line_owners, lines = [], []
        for n, (invoice, (inbn, error)) in enumerate(zip(invoices, out, strict=True)):
            if error is None and inbn:
                for line in invoice["lines"]:
                    line_owners.append(n)
                    lines.append({"INBN": inbn, **line})
        if lines:
            for owner, result in zip(
                line_owners,
                self.execute_bulk("ap_invoices.line", lines, write=True),
                strict=True,
            ):
                if result.error and out[owner][1] is None:
                    out[owner] = (out[owner][0], result.error)
        ready = [n for n, (inbn, error) in enumerate(out) if inbn and error is None]
        if ready:
            validated = self.execute_bulk(
                "ap_invoices.validate", [{"INBN": out[n][0]} for n in ready], write=True
            )
            for n, result in zip(ready, validated, strict=True):
                if result.error:
                    out[n] = (out[n][0], result.error)
        return out

    def find_ap_invoice(
        self, *, supplier: str, invoice_number: str, payee: str = "", correlation: str = ""
    ) -> dict[str, str] | None:
        """The batch of this supplier invoice number (``LstInvBySupInv``) read with
        ``GetHead`` — the one carrying ``correlation`` in ``CORI`` when one is given."""
        found = self.execute(
            "ap_invoices.find",
            {"SPYN": payee or supplier, "SUNO": supplier, "SINO": invoice_number},
            maxrecs=0,
        )
        for entry in found:
            head = self.execute("ap_invoices.get", {"INBN": entry["INBN"]})
            if head and (not correlation or head[0].get("CORI") == correlation):
                return {**head[0], "INBN": entry["INBN"]}
        return None

    def ap_postings(self, batches: Sequence[str]) -> dict[str, dict[str, Any]]:
        """For many validated batches, in two bulk requests: each batch's head (GetHead) and
        the voucher lines M3 posted for it (GLS200MI), by batch number."""
        if not batches:
            return {}
        heads = self.execute_bulk("ap_invoices.get", [{"INBN": b} for b in batches])
        found = {
            b: {**r.records[0], "INBN": b}
            for b, r in zip(batches, heads, strict=True)
            if r.records and r.records[0].get("VONO")
        }
        keyed = list(found)
        vouchers = self.execute_bulk(
            "vouchers.lines",
            [
                {
                    "DIVI": found[b].get("DIVI") or self.divi,
                    "YEA4": found[b]["YEA4"],
                    "VONO": found[b]["VONO"],
                }
                for b in keyed
            ],
            maxrecs=0,
        )
        return {
            b: {"head": found[b], "lines": r.records} for b, r in zip(keyed, vouchers, strict=True)
        }

    def purchase_orders(self, query: str) -> list[dict[str, Any]]:
        """Purchase orders matching a PPS200MI search query, each with its head and lines (the
        heads in one bulk request, the lines in another)."""
        found = self.execute("purchase_orders.search", {"SQRY": query}, maxrecs=0)
        numbers = [f["PUNO"] for f in found]
        if not numbers:
            return []
        heads = self.execute_bulk("purchase_orders.get", [{"PUNO": n} for n in numbers])
        lines = self.execute_bulk(
            "purchase_orders.lines", [{"PUNO": n} for n in numbers], maxrecs=0
        )
        return [
            {"head": h.records[0], "lines": ls.records}
            for h, ls in zip(heads, lines, strict=True)
            if h.records
        ]

    def journal_record(self, fields: Mapping[str, Any]) -> str:
        """One journal line as the fixed-format ``PARM`` record of the connection's layout; a
        value too long for its place is refused, never cut."""
        record = ""
        for part in str(self.connection.setting("journal_layout")).split(","):
            name, _, width = part.partition(":")
            value = str(fields.get(name, "") or "")
            if len(value) > int(width):
                raise ValueError(f"{name} “{value}” is longer than its {width} places")
            record += value.ljust(int(width))
        return record.rstrip()

    def post_journal(
        self,
        *,
        key: str,
        interface: str,
        description: str,
        lines: Sequence[str],
    ) -> dict[str, Any]:
        """A GL journal batch through the generic GL interface: head and lines (each a
        fixed-format ``PARM`` record of ``interface``) in one bulk request, then — only when all
        of them went through — the control in a second.  (M3 runs every transaction of a bulk
        request whatever the ones before answered: a control beside a refused line would post
        the journal without it.)  A refusal is raised; the batch is then left uncontrolled,
        which has no accounting effect.

        Safe to send again for the same ``key``: the head and each line are keyed (KEY1,
        KEY1+LINE), so M3 answers "already exists" — or "already updated" once controlled — for
        what an earlier attempt did; nothing is added twice.
        """
        entries = [
            ("payments.head", {"KEY1": key, "INTN": interface, "DESC": description[:40]}),
            *(
                ("payments.line", {"KEY1": key, "LINE": n, "PARM": parm})
                for n, parm in enumerate(lines, start=1)
            ),
        ]
        done: list[str] = []
        posted_before = False
        for batch in (entries, [("payments.control", {"KEY1": key})]):
            for (need, _), result in zip(batch, self._run_steps(batch), strict=True):
                error = result.error
                if error is None:
                    done.append(need)
                elif error.already_updated:
                    posted_before = True
                    done.append(f"{need} (already posted)")
                elif error.already_exists:
                    done.append(f"{need} (already done)")
                else:
                    raise error
        return {"key": key, "steps": done, "already_posted": posted_before}

    def probe(self) -> CheckResult:
        """Authenticate and confirm the tenant exposes every transaction we are set up to use."""
        wanted: dict[str, set[str]] = {}
        for need in DEFAULT_PROGRAMS:
            program, transaction = self.program(need)
            wanted.setdefault(program, set()).add(transaction)
        programs = sorted(wanted)
        results = self.execute_bulk("discovery.transactions", [{"MINM": p} for p in programs])
        problems, found = [], 0
        for program, result in zip(programs, results, strict=True):
            if result.error:
                problems.append(f"{program}: {result.error.mi_message}")
                continue
            exposed = {r["TRNM"] for r in result.records}
            found += len(wanted[program] & exposed)
            problems += [f"{program}/{t} is not exposed" for t in sorted(wanted[program] - exposed)]
        tenant = self.connection.credentials.get("ti", "?")
        if problems:
            return CheckResult(
                False, f"Connected to {tenant}, but transactions are missing.", problems
            )
        return CheckResult(True, f"Connected to {tenant}: all {found} transactions available.")
