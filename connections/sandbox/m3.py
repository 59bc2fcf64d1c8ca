"""A stateful Infor CloudSuite (M3) ION API simulator.

Speaks the contract: the ION OAuth token endpoint (password and refresh grants, configurable
lifetime), single MI calls ``GET …/m3api-rest/v2/execute/{PROGRAM}/{TRANSACTION};matrix?FIELD=``
and the bulk ``POST …/v2/execute`` (one request, many transactions), v2 responses with the real
``nrOfSuccessfullTransactions`` spelling, errors as HTTP 200 with ``errorMessage``, values as
strings right-padded to their field length unless ``righttrim``.  Field lists and required
inputs come from the MI metadata catalogue shipped in ``data/``.

Programs: CRS610MI (customers), CRS620MI (suppliers), CRS630MI (chart of accounts), ARS200MI
(AR invoices), ARS040MI (customer payment batches: head, lines, charges, control → AR ledger and
GL postings), APS200MI (supplier invoices: ``SearchSupInvoic`` with a small query language —
``FIELD:value`` and ``FIELD:[from TO to]`` joined by ``AND``, unverified against M3's search —
and ``GetInvoice``), GLS840MI (GL journal batches: head, lines whose ``PARM`` is a fixed-format
record laid out by ``JOURNAL_LAYOUT``, control → GL postings) and MRS001MI (discovery).  Add
transactions are not idempotent, as in M3: a repeated key is "already exists", and a line or
control for a batch already controlled is "already updated".
"""

from __future__ import annotations

import base64
import json
import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from werkzeug.wrappers import Request, Response

from connections.sandbox.base import Simulator, json_response

logger = logging.getLogger(__name__)

METADATA: dict[str, Any] = json.loads(
    (Path(__file__).parent / "data" / "m3-mi-metadata.json").read_text()
)["programs"]
DEFAULT_MAXRECS = 100
# GLS840MI: the fixed-format PARM record of the sandbox's journal interface (a tenant defines its
# own interface types in GLS840; the connector's layout setting must match it).
JOURNAL_LAYOUT = (
    ("ACDT", 8),
    ("AIT1", 8),
    ("AIT2", 8),
    ("AIT3", 8),
    ("AIT4", 8),
    ("AIT5", 8),
    ("AIT6", 8),
    ("AIT7", 8),
    ("CUCD", 3),
    ("CUAM", 17),
    ("VTXT", 40),
    # The supplier and supplier invoice a line settles (blank on other journals).
    ("SUNO", 10),
    ("SINO", 24),
    ("INYR", 4),
)
# A production grid caps what one transaction returns, maxrecs=0 included, and has no offset to
# page past it (see the contracts README): read large sets by key ranges.
GRID_CAP = 1000


class MIError(Exception):
    """An MI transaction refused its input (reported as HTTP 200 with errorMessage)."""

    def __init__(self, message: str, field: str = "", code: str = "XMI0001") -> None:
        super().__init__(message)
        self.message, self.field, self.code = message, field, code


def _money(value: Any) -> Decimal:
    try:
        return Decimal(str(value).strip() or "0")
    except ArithmeticError:
        raise MIError(f"Amount {value!r} is invalid") from None


def _fmt(value: Any) -> str:
    if isinstance(value, Decimal):
        return format(value.quantize(Decimal("0.01")), "f")
    return "" if value is None else str(value)


@dataclass
class M3State:
    """One tenant's data: customers, chart, AR ledger, payment batches, GL postings."""

    cono: int = 100
    divi: str = "AAA"
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    accounts: dict[tuple[int, str], dict[str, Any]] = field(default_factory=dict)
    ledger: list[dict[str, Any]] = field(default_factory=list)
    batches: dict[int, dict[str, Any]] = field(default_factory=dict)
    gl: list[dict[str, Any]] = field(default_factory=list)
    next_jrno: int = 1000
    suppliers: dict[str, dict[str, Any]] = field(default_factory=dict)
    supplier_invoices: list[dict[str, Any]] = field(default_factory=list)
    journals: dict[str, dict[str, Any]] = field(default_factory=dict)
    ap_batches: dict[int, dict[str, Any]] = field(default_factory=dict)
    next_inbn: int = 5000
    # What M3 derives an AP invoice's coding from: the supplier's invoice accounting template
    # (REGR) → the expense account its AP50 rules book the lines to (the default when unset).
    ap_rules: dict[str, str] = field(default_factory=dict)
    ap_default_account: str = "4010"
    vouchers: dict[tuple[int, int], list[dict[str, Any]]] = field(default_factory=dict)
    purchase_orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Text an MI line input may carry to be refused, as a tenant's validation would (tests).
    refuse_line_text: str = "REFUSE"

    last_lmts: int = 0
    # What LMTS holds.  The metadata says only "Timestamp", numeric, 18 digits
    # (mi-metadata.json, CRS630MI LstAccountID), and no published source says which: epoch
    # milliseconds (13 digits today) or yyyyMMddHHmmssSSS (17 digits).  The simulator takes
    # either ("epoch_ms", "datetime_ms"); the flows that filter by it are tested under both.
    lmts_unit: str = "epoch_ms"

    def now_lmts(self) -> int:
        """LMTS in ``lmts_unit``, strictly increasing per change."""
        now = time.time()
        if self.lmts_unit == "datetime_ms":
            stamp = int(
                time.strftime("%Y%m%d%H%M%S", time.gmtime(now)) + f"{int(now % 1 * 1000):03d}"
            )
        else:
            stamp = int(now * 1000)
        self.last_lmts = max(stamp, self.last_lmts + 1)
        return self.last_lmts

    def put_customer(self, cuno: str, **fields: Any) -> dict[str, Any]:
        record = self.customers.setdefault(
            cuno, {"CUNO": cuno, "CONO": self.cono, "DIVI": self.divi, "STAT": "20"}
        )
        record.update(fields)
        record["LMTS"] = self.now_lmts()
        record["LMDT"] = time.strftime("%Y%m%d")
        return record

    def put_account(self, aitm: str, tx40: str, aitp: int = 1, **fields: Any) -> None:
        self.accounts[(aitp, aitm)] = {
            "CONO": self.cono,
            "DIVI": self.divi,
            "AITP": aitp,
            "AITM": aitm,
            "TX40": tx40,
            "TX15": tx40[:15],
            **fields,
        }

    def add_invoice(
        self,
        cuno: str,
        cino: str,
        amount: Decimal | str,
        currency: str,
        *,
        vat: Decimal | str = "0",
        ivdt: str = "",
        dudt: str = "",
        inyr: int = 0,
    ) -> dict[str, Any]:
        ivdt = ivdt or time.strftime("%Y%m%d")
        self.next_jrno += 1
        entry = {
            "CONO": self.cono,
            "DIVI": self.divi,
            "YEA4": int(ivdt[:4]),
            "JRNO": self.next_jrno,
            "JSNO": 1,
            "TRCD": 10,
            "PYNO": cuno,
            "CUNO": cuno,
            "CINO": cino,
            "INYR": inyr or int(ivdt[:4]),
            "CUCD": currency,
            "CUAM": _money(amount),
            "VTAM": _money(vat),
            "IVDT": ivdt,
            "DUDT": dudt or ivdt,
            "ACDT": ivdt,
            "RECO": 0,
            "IVTP": "10",
            "TDSC": "Invoice",
            "VSER": "",
            "VONO": self.next_jrno,
            "LMTS": self.now_lmts(),
        }
        self.ledger.append(entry)
        return entry

    def add_receipt(
        self, cuno: str, cino: str, amount: Decimal | str, *, text: str = "Bank transfer"
    ) -> dict[str, Any]:
        """A payment someone posted in CloudSuite by hand (a bank transfer, say): it lowers
        what is open on the invoice, as an AR receipt does."""
        invoice = self.invoice(cuno, cino)
        if invoice is None:
            raise KeyError(f"no invoice {cino} of {cuno}")
        self.next_jrno += 1
        today = time.strftime("%Y%m%d")
        entry = {
            **{k: invoice[k] for k in ("CONO", "DIVI", "PYNO", "CUNO", "CINO", "INYR", "CUCD")},
            **{k: invoice[k] for k in ("DUDT", "IVDT")},
            "YEA4": int(today[:4]),
            "JRNO": self.next_jrno,
            "JSNO": 1,
            "TRCD": 20,
            "CUAM": -_money(amount),
            "VTAM": Decimal("0"),
            "ACDT": today,
            "RECO": 0,
            "IVTP": "",
            "TDSC": text,
            "VSER": "",
            "VONO": self.next_jrno,
            "PBID": "",
            "CKNO": "",
            "LMTS": self.now_lmts(),
        }
        self.ledger.append(entry)
        return entry

    def by_key(self) -> dict[tuple[int, int, int], dict[str, Any]]:
        """The AR ledger by (YEA4, JRNO, JSNO), rebuilt only when entries were added."""
        cache = self.__dict__.get("_by_key")
        if cache is None or cache[0] != len(self.ledger):
            index = {(e["YEA4"], e["JRNO"], e["JSNO"]): e for e in self.ledger}
            self.__dict__["_by_key"] = cache = (len(self.ledger), index)
        return cache[1]

    def by_customer(self) -> dict[str, list[dict[str, Any]]]:
        """The AR ledger by customer, rebuilt only when entries were added."""
        cache = self.__dict__.get("_by_customer")
        if cache is None or cache[0] != len(self.ledger):
            index: dict[str, list[dict[str, Any]]] = {}
            for e in self.ledger:
                index.setdefault(e["CUNO"], []).append(e)
            self.__dict__["_by_customer"] = cache = (len(self.ledger), index)
        return cache[1]

    def invoice(self, cuno: str, cino: str, inyr: int | None = None) -> dict[str, Any] | None:
        for entry in self.by_customer().get(cuno, ()):
            if (
                entry["TRCD"] == 10
                and entry["CUNO"] == cuno
                and entry["CINO"] == cino
                and (inyr is None or entry["INYR"] == inyr)
            ):
                return entry
        return None

    def open_amount(self, invoice: dict[str, Any]) -> Decimal:
        paid = sum(
            (
                e["CUAM"]
                for e in self.by_customer().get(invoice["CUNO"], ())
                if e["TRCD"] == 20 and e["CINO"] == invoice["CINO"]
            ),
            Decimal("0"),
        )
        return invoice["CUAM"] + paid

    def receipts(self) -> list[dict[str, Any]]:
        return [e for e in self.ledger if e["TRCD"] == 20]

    def put_supplier(self, suno: str, **fields: Any) -> dict[str, Any]:
        record = self.suppliers.setdefault(
            suno, {"SUNO": suno, "CONO": self.cono, "STAT": "20", "SUTY": "0"}
        )
        record.update(fields)
        record["LMTS"] = self.now_lmts()
        return record

    def add_supplier_invoice(
        self,
        suno: str,
        sino: str,
        amount: Decimal | str,
        currency: str,
        *,
        due: str,
        ivdt: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        self.next_jrno += 1
        ivdt = ivdt or time.strftime("%Y%m%d")
        entry = {
            "CONO": self.cono,
            "DIVI": self.divi,
            "YEA4": int(ivdt[:4]),
            "JRNO": self.next_jrno,
            "JSNO": 1,
            "TRCD": 40,
            "SPYN": suno,
            "SUNO": suno,
            "SINO": sino,
            "INYR": int(ivdt[:4]),
            "IVDT": ivdt,
            "DUDT": due,
            "ACDT": ivdt,
            "CUCD": currency,
            "CUAM": Decimal(str(amount)),
            "VTAM": Decimal("0"),
            "APRV": 1,
            "IVBL": "",
            "PYST": "10",  # not paid (unverified code values: a tenant's statuses may differ)
            "VONO": self.next_jrno,
            **fields,
        }
        self.supplier_invoices.append(entry)
        return entry

    def add_purchase_order(
        self, puno: str, suno: str, currency: str, *, pudt: str, lines: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """A purchase order with its lines (``ITNO``, ``ITDS``, ``ORQA``, ``PUPR``, ``VTCD``)."""
        head = {
            "CONO": self.cono,
            "DIVI": self.divi,
            "PUNO": puno,
            "SUNO": suno,
            "CUCD": currency,
            "PUDT": pudt,
            "DWDT": pudt,
            "PUSL": "20",
            "PUST": "20",
            "lines": [
                {
                    "PUNO": puno,
                    "PNLI": 10 * n,
                    "PNLS": 0,
                    "SUNO": suno,
                    "PUST": "20",
                    "PUSL": "20",
                    **line,
                    "LNAM": Decimal(str(line["ORQA"])) * Decimal(str(line["PUPR"])),
                }
                for n, line in enumerate(lines, start=1)
            ],
        }
        self.purchase_orders[puno] = head
        return head

    def ap_invoices(self) -> list[dict[str, Any]]:
        """Supplier invoices M3 holds that came through APS450MI batches."""
        return [i for i in self.supplier_invoices if i.get("INBN")]

    def journal_lines(self) -> list[dict[str, Any]]:
        return [
            line for j in self.journals.values() if j["status"] == "updated" for line in j["posted"]
        ]


def parse_parm(parm: str) -> dict[str, str]:
    """A GLS840MI ``PARM`` record as its fields (``JOURNAL_LAYOUT``)."""
    fields, at = {}, 0
    for name, width in JOURNAL_LAYOUT:
        fields[name] = parm[at : at + width].strip()
        at += width
    return fields


_CLAUSE = re.compile(r"^(\w+):(?:\[(\S+) TO (\S+)\]|(\S+))$")


def search(rows: list[dict[str, Any]], query: str) -> list[dict[str, Any]]:
    """Rows matching ``FIELD:value`` / ``FIELD:[from TO to]`` clauses joined by ``AND``."""
    tests = []
    for clause in [c.strip() for c in query.split(" AND ") if c.strip()]:
        match = _CLAUSE.match(clause)
        if match is None:
            raise MIError(f"Search query is invalid: {clause[:60]}", "SQRY", "XSE0001")
        name, low, high, equal = match.groups()
        tests.append((name, low, high, equal))

    def ok(row: dict[str, Any]) -> bool:
        for name, low, high, equal in tests:
            value = _fmt(row.get(name, ""))
            if equal is not None and value != equal:
                return False
            if low is not None and not (low <= value <= high):
                return False
        return True

    return [r for r in rows if ok(r)]


def _by_date(entries: Any) -> list[dict[str, Any]]:
    """AR lists in invoice-date order (then journal number): the order the client's key-range
    reading relies on (unverified against a real tenant)."""
    return sorted(entries, key=lambda e: (e["IVDT"], e["JRNO"], e["JSNO"]))


class M3Simulator(Simulator):
    """The ION API gateway and authorization server of one M3 tenant."""

    name = "m3"
    kind = "infor_m3"
    label = "CloudSuite (M3 ION API)"
    default_port = 8101

    def __init__(
        self,
        *,
        tenant: str = "SANDBOX_TST",
        token_lifetime: int = 7200,
        refresh_tokens: bool = True,
        rate_limit_per_minute: int | None = None,
    ) -> None:
        super().__init__(rate_limit_per_minute=rate_limit_per_minute)
        self.tenant = tenant
        self.token_lifetime = token_lifetime
        self.refresh_tokens = refresh_tokens
        self.client_id = f"{tenant}~sandbox-client"
        self.client_secret = "sandbox-client-secret"
        self.saak = f"{tenant}#sandbox-service-account"
        self.sask = "sandbox-service-secret"
        self.state = M3State()
        self.tokens: dict[str, float] = {}
        self.refresh: dict[str, str] = {}
        self.token_requests = 0
        self.api_requests = 0  # execute requests (single or bulk): what the rate limit counts
        self.requests_by_program: dict[str, int] = {}  # execute requests that reached a program
        self.mi_calls: list[str] = []
        self.grid_cap = GRID_CAP
        # A field holds no more than its catalogue length (CRS620MI SFI1 is 10 characters, SFI2
        # 8 digits: no IBAN or BIC fits).  Off by default so the demo tenant can keep its bank
        # details in SFI1 to SFI4; on, a longer value comes back cut, as a real field would hold it.
        self.cut_to_length = False

    def ionapi(self, base_url: str) -> dict[str, str]:
        """The .ionapi file a tenant admin would download for this sandbox."""
        base = base_url.rstrip("/")
        return {
            "ti": self.tenant,
            "cn": "ml-connector sandbox",
            "ci": self.client_id,
            "cs": self.client_secret,
            "iu": base,
            "pu": f"{base}/{self.tenant}/as/",
            "oa": "authorization.oauth2",
            "ot": "token.oauth2",
            "or": "revoke_token.oauth2",
            "saak": self.saak,
            "sask": self.sask,
            "ev": "SANDBOX",
            "v": "1.0",
        }

    # -- HTTP -------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        path = request.path
        if path == f"/{self.tenant}/as/token.oauth2" and request.method == "POST":
            return self.apply_fault("token", lambda: self._token(request))
        if path == f"/{self.tenant}/as/revoke_token.oauth2" and request.method == "POST":
            self.tokens.pop(request.form.get("token", ""), None)
            return Response(status=200)
        prefix = f"/{self.tenant}/M3/m3api-rest/v2/execute"
        if not path.startswith(prefix):
            return json_response({"error": "not found"}, 404)
        token = (request.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        with self.lock:
            expiry = self.tokens.get(token)
        if expiry is None or expiry < time.time():
            return json_response(
                {"error": "invalid_token", "error_description": "Access token expired or invalid"},
                401,
            )
        wait = self.rate_limit.check(token)
        if wait is not None:
            return json_response(
                {"message": "Rate limit exceeded"}, 429, {"Retry-After": str(max(1, round(wait)))}
            )
        with self.lock:
            self.api_requests += 1
        rest = unquote(path[len(prefix) :])
        if rest in ("", "/") and request.method == "POST":
            body = request.get_json(silent=True) or {}
            program = str(body.get("program", "")) if isinstance(body, dict) else ""
            items = body.get("transactions") if isinstance(body, dict) else None
            names = [
                f"{program}/{t.get('transaction', '')}" for t in items or [] if isinstance(t, dict)
            ]
            # "bulk:PROGRAM PROGRAM/Txn …": a fault can aim at the program or at one transaction
            subject = " ".join([f"bulk:{program}", *names])
            self._count_program(program)
            return self.apply_fault(subject, lambda: self._bulk(request))
        if request.method != "GET":
            return json_response({"error": "method not allowed"}, 405)
        segments = rest.strip("/").split("/")
        if len(segments) != 2:
            return json_response({"error": "not found"}, 404)
        program, _, program_matrix = segments[0].partition(";")
        transaction, _, matrix = segments[1].partition(";")
        params = dict(p.split("=", 1) for p in f"{program_matrix};{matrix}".split(";") if "=" in p)
        self._count_program(program)
        return self.apply_fault(
            f"{program}/{transaction}",
            lambda: self._single(request, program, transaction, params),
        )

    def _count_program(self, program: str) -> None:
        with self.lock:
            self.requests_by_program[program] = self.requests_by_program.get(program, 0) + 1

    def _token(self, request: Request) -> Response:
        client_id, client_secret = request.form.get("client_id"), request.form.get("client_secret")
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            client_id, _, client_secret = base64.b64decode(auth[6:]).decode().partition(":")
        if (client_id, client_secret) != (self.client_id, self.client_secret):
            return json_response({"error": "invalid_client"}, 401)
        grant = request.form.get("grant_type")
        if grant == "password":
            if (request.form.get("username"), request.form.get("password")) != (
                self.saak,
                self.sask,
            ):
                return json_response(
                    {"error": "invalid_grant", "error_description": "Invalid service account"}, 400
                )
        elif grant == "refresh_token":
            if request.form.get("refresh_token") not in self.refresh:
                return json_response({"error": "invalid_grant"}, 400)
            with self.lock:
                self.refresh.pop(request.form["refresh_token"], None)  # rotated: single use
        else:
            return json_response({"error": "unsupported_grant_type"}, 400)
        access = secrets.token_urlsafe(24)
        body: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.token_lifetime,
        }
        with self.lock:
            self.token_requests += 1
            self.tokens[access] = time.time() + self.token_lifetime
            if self.refresh_tokens:
                body["refresh_token"] = secrets.token_urlsafe(24)
                self.refresh[body["refresh_token"]] = access
        return json_response(body)

    def expire_tokens(self) -> None:
        """Expire every issued token now (a test of refresh/401 handling)."""
        with self.lock:
            for token in self.tokens:
                self.tokens[token] = 0

    def _single(
        self, request: Request, program: str, transaction: str, matrix: dict[str, str]
    ) -> Response:
        inputs = {k.upper(): v for k, v in request.args.items()}
        for key in ("cono", "divi"):
            if key in matrix:
                inputs.setdefault(key.upper(), matrix[key])
        result = self._run(
            program,
            transaction,
            inputs,
            maxrecs=matrix.get("maxrecs"),
            columns=matrix.get("returncols"),
            righttrim=request.args.get("righttrim") == "true",
        )
        return self._respond([result])

    def _bulk(self, request: Request) -> Response:
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("transactions"), list):
            return json_response({"error": "bad request"}, 400)
        program = str(body.get("program", ""))
        defaults = {
            "CONO": body.get("cono") or request.args.get("cono"),
            "DIVI": request.args.get("divi"),
        }
        righttrim = request.args.get("righttrim") == "true"
        results = []
        for item in body["transactions"]:
            record = {k.upper(): v for k, v in (item.get("record") or {}).items()}
            for key, value in defaults.items():
                if value is not None:
                    record.setdefault(key, value)
            columns = item.get("selectedColumns")
            results.append(
                self._run(
                    program,
                    str(item.get("transaction", "")),
                    record,
                    maxrecs=item.get("maxReturnedRecords", body.get("maxReturnedRecords")),
                    columns=",".join(columns) if columns else None,
                    righttrim=righttrim,
                )
            )
        return self._respond(results)

    def _respond(self, results: list[dict[str, Any]]) -> Response:
        failed = sum(1 for r in results if "errorMessage" in r)
        return json_response(
            {
                "results": results,
                "wasTerminated": False,
                "nrOfSuccessfullTransactions": len(results) - failed,
                "nrOfFailedTransactions": failed,
            }
        )

    # -- MI ---------------------------------------------------------------------------------

    def _run(
        self,
        program: str,
        transaction: str,
        inputs: dict[str, Any],
        *,
        maxrecs: Any,
        columns: str | None,
        righttrim: bool,
    ) -> dict[str, Any]:
        meta = METADATA.get(program, {}).get("transactions", {}).get(transaction)
        handler: Callable[[dict[str, Any]], list[dict[str, Any]]] | None = getattr(
            self, f"mi_{program}_{transaction}", None
        )
        with self.lock:
            self.mi_calls.append(f"{program}/{transaction}")
        if meta is None or handler is None:
            return {
                "transaction": transaction,
                "errorMessage": f"Transaction {transaction} does not exist in program {program}",
                "errorType": "ServerReturnedNOK",
                "errorCode": "XMI0404",
            }
        inputs = {k: ("" if v is None else str(v)) for k, v in inputs.items()}
        try:
            for spec in meta["inputs"]:
                if spec["required"] and not inputs.get(spec["name"], "").strip():
                    label = spec["description"].replace(" (Required)", "")
                    raise MIError(f"{label} must be entered", spec["name"], "WPB0202")
            with self.lock:
                rows = handler(inputs)
        except MIError as exc:
            return {
                "transaction": transaction,
                "errorMessage": exc.message,
                "errorField": exc.field,
                "errorCode": exc.code,
                "errorType": "ServerReturnedNOK",
            }
        limit = int(maxrecs) if maxrecs not in (None, "") else DEFAULT_MAXRECS
        rows = rows[: min(limit, self.grid_cap) if limit else self.grid_cap]
        wanted = [c.strip() for c in columns.split(",")] if columns else None
        return {
            "transaction": transaction,
            "records": [
                self._shape(meta["outputs"], row, wanted, righttrim, cut=self.cut_to_length)
                for row in rows
            ],
        }

    @staticmethod
    def _shape(
        outputs: list[dict[str, Any]],
        row: dict[str, Any],
        wanted: list[str] | None,
        righttrim: bool,
        *,
        cut: bool = False,
    ) -> dict[str, str]:
        shaped = {}
        for spec in outputs:
            name = spec["name"]
            if wanted and name not in wanted:
                continue
            value = _fmt(row.get(name, ""))
            length = int(spec.get("length") or 0)
            if cut and length:
                value = value[:length]
            shaped[name] = value if righttrim else value.ljust(length)
        return shaped

    # CRS610MI — customers
    def mi_CRS610MI_LstByNumber(self, i: dict[str, str]) -> list[dict[str, Any]]:
        since = int(i["LMTS"]) if i.get("LMTS", "").strip() else 0
        start = i.get("CUNO", "").strip()
        return [
            c for k, c in sorted(self.state.customers.items()) if k >= start and c["LMTS"] >= since
        ]

    def mi_CRS610MI_GetBasicData(self, i: dict[str, str]) -> list[dict[str, Any]]:
        customer = self.state.customers.get(i["CUNO"].strip())
        if customer is None:
            raise MIError(f"Customer number {i['CUNO'].strip()} does not exist", "CUNO", "WCU0203")
        return [customer]

    # CRS630MI — chart of accounts
    def mi_CRS630MI_LstAccountID(self, i: dict[str, str]) -> list[dict[str, Any]]:
        aitp, start = int(i["AITP"]), i.get("AITM", "").strip()
        return [
            a
            for (tp, aitm), a in sorted(self.state.accounts.items())
            if tp == aitp and aitm >= start
        ]

    def mi_CRS630MI_GetAccountID(self, i: dict[str, str]) -> list[dict[str, Any]]:
        account = self.state.accounts.get((int(i["AITP"]), i["AITM"].strip()))
        if account is None:
            raise MIError(f"Account {i['AITM'].strip()} does not exist", "AITM", "WAI0103")
        return [account]

    # ARS200MI — AR invoices (the AR ledger)
    def mi_ARS200MI_LstInvoices(self, i: dict[str, str]) -> list[dict[str, Any]]:
        cuno, ivdt = i["CUNO"].strip(), i.get("IVDT", "").strip()
        return _by_date(
            e for e in self.state.by_customer().get(cuno, ()) if not ivdt or e["IVDT"] >= ivdt
        )

    def mi_ARS200MI_LstInvByDivi(self, i: dict[str, str]) -> list[dict[str, Any]]:
        fdiv, tdiv = i.get("FDIV", "").strip(), i.get("TDIV", "").strip() or "~"
        cuno, ivdt = i.get("CUNO", "").strip(), i.get("IVDT", "").strip()
        entries = self.state.by_customer().get(cuno, []) if cuno else self.state.ledger
        return _by_date(
            e
            for e in entries
            if fdiv <= e["DIVI"] <= tdiv
            and (not cuno or e["CUNO"] == cuno)
            and (not ivdt or e["IVDT"] >= ivdt)
        )

    def mi_ARS200MI_GetInvoice(self, i: dict[str, str]) -> list[dict[str, Any]]:
        entry = self.state.by_key().get((int(i["YEA4"]), int(i["JRNO"]), int(i["JSNO"])))
        if entry is None:
            raise MIError("Record does not exist", "JRNO", "XRE0103")
        return [entry]

    # ARS040MI — customer payment batches
    def _batch(self, i: dict[str, str], *, open_only: bool = True) -> dict[str, Any]:
        pbid = int(i["PBID"])
        batch = self.state.batches.get(pbid)
        if batch is None:
            raise MIError(f"Payment batch {pbid} does not exist", "PBID", "WPB0103")
        if open_only and batch["status"] != "entered":
            raise MIError(f"Payment batch {pbid} is already updated", "PBID", "WPB0501")
        return batch

    def mi_ARS040MI_AddBatchHead(self, i: dict[str, str]) -> list[dict[str, Any]]:
        pbid = int(i["PBID"])
        if pbid in self.state.batches:
            raise MIError(f"Payment batch {pbid} already exists", "PBID", "WPB0102")
        self.state.batches[pbid] = {
            "PBID": pbid,
            "BOPE": i["BOPE"],
            "BAAN": i.get("BAAN", ""),
            "ACDT": i.get("ACDT") or time.strftime("%Y%m%d"),
            "lines": {},
            "charges": [],
            "status": "entered",
        }
        return [{"PBID": pbid}]

    def mi_ARS040MI_AddBatchLine(self, i: dict[str, str]) -> list[dict[str, Any]]:
        batch = self._batch(i)
        trno = int(i["TRNO"])
        if trno in batch["lines"]:
            raise MIError(
                f"Transaction {trno} already exists in batch {batch['PBID']}", "TRNO", "WTR0102"
            )
        cuno, cino = i["CUNO"].strip(), i["CINO"].strip()
        invoice = self.state.invoice(cuno, cino, int(i["INYR"]))
        if invoice is None:
            raise MIError(
                f"Invoice number {cino} does not exist for customer {cuno}", "CINO", "WCI0203"
            )
        currency = i.get("CUCD", "").strip() or invoice["CUCD"]
        if currency != invoice["CUCD"]:
            raise MIError(
                f"Currency {currency} differs from invoice currency {invoice['CUCD']}",
                "CUCD",
                "WCU0501",
            )
        ait1 = i.get("AIT1", "").strip()
        if ait1 and (1, ait1) not in self.state.accounts:
            raise MIError(f"Account {ait1} does not exist", "AIT1", "WAI0103")
        batch["lines"][trno] = {
            "TRNO": trno,
            "CUNO": cuno,
            "CINO": cino,
            "INYR": int(i["INYR"]),
            "CUCD": currency,
            "PYAM": _money(i["PYAM"]),
            "AIT": [i.get(f"AIT{n}", "").strip() for n in range(1, 8)],
            "CKNO": i.get("CKNO", "").strip(),
        }
        return []

    def mi_ARS040MI_AddBatchCharge(self, i: dict[str, str]) -> list[dict[str, Any]]:
        batch = self._batch(i)
        code = i.get("CHRI", "").strip()
        if code and (1, code) not in self.state.accounts:  # here a charge code is its account
            raise MIError(f"Charge code {code} does not exist", "CHRI", "WCH0103")
        batch["charges"].append(
            {
                "CHAM": _money(i["CHAM"]),
                "CHRI": i.get("CHRI", "").strip(),
                "CUCD": i.get("CUCD", "").strip(),
            }
        )
        return []

    def mi_ARS040MI_ControlBatch(self, i: dict[str, str]) -> list[dict[str, Any]]:
        batch = self._batch(i)
        if not batch["lines"]:
            raise MIError(f"Payment batch {batch['PBID']} has no lines", "PBID", "WPB0601")
        for line in batch["lines"].values():
            invoice = self.state.invoice(line["CUNO"], line["CINO"], line["INYR"])
            assert invoice is not None
            self.state.next_jrno += 1
            self.state.ledger.append(
                {
                    **{
                        k: invoice[k]
                        for k in (
                            "CONO",
                            "DIVI",
                            "PYNO",
                            "CUNO",
                            "CINO",
                            "INYR",
                            "CUCD",
                            "DUDT",
                            "IVDT",
                        )
                    },
                    "YEA4": int(batch["ACDT"][:4]),
                    "JRNO": self.state.next_jrno,
                    "JSNO": 1,
                    "TRCD": 20,
                    "CUAM": -line["PYAM"],
                    "VTAM": Decimal("0"),
                    "ACDT": batch["ACDT"],
                    "RECO": 0,
                    "IVTP": "",
                    "TDSC": "Payment",
                    "VSER": "",
                    "VONO": self.state.next_jrno,
                    "PBID": batch["PBID"],
                    "CKNO": line["CKNO"],
                    "LMTS": self.state.now_lmts(),
                }
            )
            self.state.gl.append(
                {
                    "PBID": batch["PBID"],
                    "TRNO": line["TRNO"],
                    "AIT": line["AIT"],
                    "amount": line["PYAM"],
                    "CUCD": line["CUCD"],
                    "CINO": line["CINO"],
                }
            )
            invoice["RECO"] = 9 if self.state.open_amount(invoice) <= 0 else 0
        for charge in batch["charges"]:
            self.state.gl.append(
                {
                    "PBID": batch["PBID"],
                    "TRNO": 0,
                    "AIT": [charge["CHRI"]],
                    "amount": charge["CHAM"],
                    "CUCD": charge["CUCD"],
                    "CINO": "",
                }
            )
        batch["status"] = "updated"
        return []

    # CRS620MI — suppliers
    def mi_CRS620MI_LstSuppliers(self, i: dict[str, str]) -> list[dict[str, Any]]:
        since = int(i["LMTS"]) if i.get("LMTS", "").strip() else 0
        first, last = i.get("FRSU", "").strip(), i.get("TOSU", "").strip()
        return [
            s
            for k, s in sorted(self.state.suppliers.items())
            if k >= first and (not last or k <= last) and s["LMTS"] >= since
        ]

    def mi_CRS620MI_GetBasicData(self, i: dict[str, str]) -> list[dict[str, Any]]:
        supplier = self.state.suppliers.get(i["SUNO"].strip())
        if supplier is None:
            raise MIError(f"Supplier {i['SUNO'].strip()} does not exist", "SUNO", "WSU0203")
        return [supplier]

    # APS200MI — supplier invoices
    def mi_APS200MI_SearchSupInvoic(self, i: dict[str, str]) -> list[dict[str, Any]]:
        return search(self.state.supplier_invoices, i["SQRY"].strip())

    def mi_APS200MI_GetInvoice(self, i: dict[str, str]) -> list[dict[str, Any]]:
        key = (int(i["YEA4"]), int(i["JRNO"]), int(i["JSNO"]))
        for entry in self.state.supplier_invoices:
            if (entry["YEA4"], entry["JRNO"], entry["JSNO"]) == key:
                return [entry]
        raise MIError("Supplier invoice does not exist", "JRNO", "WJR0203")

    # APS450MI / APS455MI — supplier invoice batches (AP)
    def _ap_batch(self, i: dict[str, str]) -> dict[str, Any]:
        batch = self.state.ap_batches.get(int(i["INBN"]))
        if batch is None:
            raise MIError(f"Invoice batch {i['INBN'].strip()} does not exist", "INBN", "WIN0103")
        return batch

    def mi_APS450MI_AddHead(self, i: dict[str, str]) -> list[dict[str, Any]]:
        suno = i["SUNO"].strip()
        if suno not in self.state.suppliers:
            raise MIError(f"Supplier {suno} does not exist", "SUNO", "WSU0203")
        sino, ivdt = i.get("SINO", "").strip(), i["IVDT"].strip()
        if len(ivdt) != 8 or not ivdt.isdigit():
            raise MIError(f"Invoice date {ivdt} is invalid", "IVDT", "WIV0103")
        inyr = int(ivdt[:4])
        for entry in self.state.supplier_invoices:
            if (entry["SUNO"], entry["SINO"], entry["INYR"]) == (suno, sino, inyr):
                raise MIError(f"Supplier invoice number {sino} already exists", "SINO", "WSI0104")
        self.state.next_inbn += 1
        inbn = self.state.next_inbn
        self.state.ap_batches[inbn] = {
            "INBN": inbn,
            "SUNO": suno,
            "SPYN": i.get("SPYN", "").strip() or suno,
            "SINO": sino,
            "IVDT": ivdt,
            "DUDT": i.get("DUDT", "").strip(),
            "CUCD": i.get("CUCD", "").strip(),
            "CUAM": _money(i.get("CUAM", "0")),
            "VTAM": _money(i.get("VTAM", "0")),
            "CORI": i.get("CORI", "").strip(),
            "DIVI": i.get("DIVI", "").strip() or self.state.divi,
            "SUPA": "10",  # entered, not validated
            "lines": {},
            "errors": "",
        }
        return [{"INBN": inbn}]

    def mi_APS450MI_AddLine(self, i: dict[str, str]) -> list[dict[str, Any]]:
        batch = self._ap_batch(i)
        if batch["SUPA"] != "10":
            raise MIError(f"Invoice batch {batch['INBN']} is already validated", "INBN", "WIN0105")
        if i["RDTP"].strip() not in ("1", "2", "3", "5", "8"):
            raise MIError(f"Line type {i['RDTP'].strip()} is invalid", "RDTP", "WRD0103")
        if self.state.refuse_line_text and self.state.refuse_line_text in i.get("CHGT", ""):
            raise MIError("Service code is not valid for this supplier", "SERS", "WSE0103")
        trno = len(batch["lines"]) + 1
        batch["lines"][trno] = {
            "TRNO": trno,
            "RDTP": i["RDTP"].strip(),
            "NLAM": _money(i.get("NLAM", "0")),
            "CHGT": i.get("CHGT", "").strip(),
        }
        return [{"TRNO": trno}]

    def mi_APS450MI_GetHead(self, i: dict[str, str]) -> list[dict[str, Any]]:
        batch = self._ap_batch(i)
        total = sum((line["NLAM"] for line in batch["lines"].values()), Decimal(0))
        return [{**batch, "TLNA": total, "IBHE": batch["errors"], "YEA4": batch.get("YEA4", "")}]

    def mi_APS450MI_LstInvBySupInv(self, i: dict[str, str]) -> list[dict[str, Any]]:
        wanted = (i["SPYN"].strip(), i["SUNO"].strip(), i.get("SINO", "").strip())
        return [
            b for b in self.state.ap_batches.values() if (b["SPYN"], b["SUNO"], b["SINO"]) == wanted
        ]

    def mi_APS455MI_ValidByBatchNo(self, i: dict[str, str]) -> list[dict[str, Any]]:
        batch = self._ap_batch(i)
        if batch["SUPA"] != "10":
            raise MIError(f"Invoice batch {batch['INBN']} is already validated", "INBN", "WIN0105")
        key = (batch["SUNO"], batch["SINO"], int(batch["IVDT"][:4]))
        if any((e["SUNO"], e["SINO"], e["INYR"]) == key for e in self.state.supplier_invoices):
            batch["errors"] = f"Supplier invoice number {batch['SINO']} already exists"
            raise MIError(batch["errors"], "SINO", "WSI0104")
        total = sum((line["NLAM"] for line in batch["lines"].values()), Decimal(0))
        if not batch["lines"] or total + batch["VTAM"] != batch["CUAM"]:
            batch["errors"] = "Invoice amount differs from the sum of the lines and VAT"
            raise MIError(batch["errors"], "CUAM", "WCU0601")
        supplier = self.state.suppliers[batch["SUNO"]]
        account = self.state.ap_rules.get(str(supplier.get("REGR", "")), "")
        account = account or self.state.ap_default_account
        year = int(batch["IVDT"][:4])
        entry = self.state.add_supplier_invoice(
            batch["SUNO"],
            batch["SINO"],
            batch["CUAM"],
            batch["CUCD"],
            due=batch["DUDT"] or batch["IVDT"],
            ivdt=batch["IVDT"],
            INBN=batch["INBN"],
            CORI=batch["CORI"],
        )
        vono = entry["VONO"]
        lines = [
            {"AIT1": account, "CUAM": line["NLAM"], "TRCD": 40, "VTXT": line["CHGT"]}
            for line in batch["lines"].values()
        ]
        lines.append({"AIT1": "2440", "CUAM": -batch["CUAM"], "TRCD": 40, "VTXT": batch["SINO"]})
        if batch["VTAM"]:
            lines.append({"AIT1": "2640", "CUAM": batch["VTAM"], "TRCD": 40, "VTXT": "VAT"})
        self.state.vouchers[(year, vono)] = [
            {
                "DIVI": batch["DIVI"],
                "YEA4": year,
                "VONO": vono,
                "JRNO": vono,
                "JSNO": n,
                "CUCD": batch["CUCD"],
                **line,
            }
            for n, line in enumerate(lines, start=1)
        ]
        batch.update(SUPA="50", YEA4=year, VONO=vono, errors="")
        return []

    # PPS200MI — purchase orders
    def mi_PPS200MI_SearchHead(self, i: dict[str, str]) -> list[dict[str, Any]]:
        return search(list(self.state.purchase_orders.values()), i["SQRY"].strip())

    def _po(self, i: dict[str, str]) -> dict[str, Any]:
        found = self.state.purchase_orders.get(i["PUNO"].strip())
        if found is None:
            raise MIError(f"Purchase order {i['PUNO'].strip()} does not exist", "PUNO", "WPU0203")
        return found

    def mi_PPS200MI_GetHead(self, i: dict[str, str]) -> list[dict[str, Any]]:
        return [self._po(i)]

    def mi_PPS200MI_LstLine(self, i: dict[str, str]) -> list[dict[str, Any]]:
        return list(self._po(i)["lines"])

    # GLS200MI — what was posted
    def mi_GLS200MI_LstVoucherLines(self, i: dict[str, str]) -> list[dict[str, Any]]:
        return list(self.state.vouchers.get((int(i["YEA4"]), int(i["VONO"])), []))

    # GLS840MI — GL journal batches
    def _journal(self, i: dict[str, str]) -> dict[str, Any]:
        journal = self.state.journals.get(i["KEY1"].strip())
        if journal is None:
            raise MIError(f"Key value {i['KEY1'].strip()} does not exist", "KEY1", "WKE0103")
        if journal["status"] == "updated":
            raise MIError(f"Batch {i['KEY1'].strip()} is already updated", "KEY1", "WKE0105")
        return journal

    def mi_GLS840MI_AddBatchHead(self, i: dict[str, str]) -> list[dict[str, Any]]:
        key = i["KEY1"].strip()
        if key in self.state.journals:
            raise MIError(f"Key value {key} already exists", "KEY1", "WKE0104")
        self.state.journals[key] = {
            "KEY1": key,
            "INTN": i["INTN"].strip(),
            "DESC": i["DESC"].strip(),
            "lines": {},
            "status": "open",
            "posted": [],
        }
        return [{"CONO": self.state.cono}]

    def mi_GLS840MI_AddBatchLine(self, i: dict[str, str]) -> list[dict[str, Any]]:
        journal = self._journal(i)
        line = int(i["LINE"])
        if line in journal["lines"]:
            raise MIError(f"Line {line} already exists", "LINE", "WLI0104")
        fields = parse_parm(i["PARM"])
        if (1, fields["AIT1"]) not in self.state.accounts:
            raise MIError(f"Account {fields['AIT1']} does not exist", "PARM", "WAI0103")
        if not re.fullmatch(r"[A-Z]{3}", fields["CUCD"]):
            raise MIError(f"Currency {fields['CUCD']} is invalid", "PARM", "WCU0103")
        journal["lines"][line] = {**fields, "CUAM": _money(fields["CUAM"]), "LINE": line}
        return [{"CONO": self.state.cono}]

    def mi_GLS840MI_CtrlBatch(self, i: dict[str, str]) -> list[dict[str, Any]]:
        journal = self._journal(i)
        if not journal["lines"]:
            raise MIError(f"Batch {journal['KEY1']} has no lines", "KEY1", "WKE0601")
        journal["posted"] = [
            {**line, "KEY1": journal["KEY1"]} for _, line in sorted(journal["lines"].items())
        ]
        journal["status"] = "updated"
        return [{"CONO": self.state.cono}]

    # MRS001MI — discovery
    def mi_MRS001MI_LstTransactions(self, i: dict[str, str]) -> list[dict[str, Any]]:
        program = METADATA.get(i["MINM"].strip())
        if program is None:
            raise MIError(f"Program {i['MINM'].strip()} does not exist", "MINM", "WMI0103")
        return [
            {"MINM": i["MINM"].strip(), "TRNM": name, "TRDS": t.get("description", "")[:60]}
            for name, t in program["transactions"].items()
        ]

    def connection_values(self, url: str) -> dict[str, Any]:
        return {
            "kind": "infor_m3",
            "credentials": self.ionapi(url),
            "settings": {"cono": self.state.cono, "divi": self.state.divi},
        }

    def seed(self, **options: Any) -> None:
        from connections.sandbox.seed import seed_tenant

        with self.lock:
            seed_tenant(
                self.state,
                invoices=int(options.get("invoices", 24)),
                customers=int(options.get("customers", 10)),
            )

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {"state": self.state, "token_lifetime": self.token_lifetime}

    def restore(self, snapshot: dict[str, Any]) -> None:
        with self.lock:
            self.state = snapshot["state"]
            fresh = M3State()
            for name, value in vars(fresh).items():  # a state saved by an older sandbox
                if not hasattr(self.state, name):
                    setattr(self.state, name, value)
            self.token_lifetime = snapshot.get("token_lifetime", self.token_lifetime)

    def control_action(self, request: Request) -> Response:
        if request.path == "/_sandbox/ionapi":
            return json_response(self.ionapi(request.host_url))
        return super().control_action(request)

    def state_summary(self) -> dict[str, Any]:
        return {
            **super().state_summary(),
            "customers": len(self.state.customers),
            "invoices": sum(1 for e in self.state.ledger if e["TRCD"] == 10),
            "receipts": len(self.state.receipts()),
            "batches": len(self.state.batches),
            "suppliers": len(self.state.suppliers),
            "journals": sum(1 for j in self.state.journals.values() if j["status"] == "updated"),
            "token_requests": self.token_requests,
            "api_requests": self.api_requests,
            "requests_by_program": dict(self.requests_by_program),
        }
