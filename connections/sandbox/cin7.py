"""A stateful Cin7 Core (API v2) simulator that checks every request it receives and every answer
it gives against Cin7's OpenAPI file (``data/cin7-openapi.yaml``, a copy of
``../shared/contracts/cin7-core/openapi.yaml``).

The file is a lossy conversion: query strings are baked into path keys (``/supplier?Page={Page}
&Limit={Limit}…``) as "path" parameters and the auth headers are marked optional.  So the check
finds the operation by its path without the query, takes the baked-in names as the query
parameters the operation allows (an unknown one is refused), checks each value against its
schema type, and validates JSON bodies and answers with ``openapi-schema-validator`` (OpenAPI
3.0 schemas, ``$ref`` into the file's components).  A request the contract would refuse gets
400 and is recorded in ``violations``; an answer of ours that breaks the contract is recorded
there too — the tests assert there are none.

Rules the schemas lack, each from the file's own text (its endpoint descriptions and model
tables), are kept — and nothing beyond them:
- a supplier needs Name, Currency, PaymentTerm, AccountPayable, TaxRule (Supplier Model table);
- a purchase order needs ``Memo``, ``Status`` and ``Lines`` (Purchase Order Model table, all
  "Required: Yes"), and is accepted only while it is DRAFT or NOT AVAILABLE (``/purchase/order``
  description: POST overwrites a draft);
- a purchase invoice only once its order is AUTHORISED and while the invoice is DRAFT or NOT
  AVAILABLE (``/purchase/invoice`` description); its line accounts must be in the chart;
- every order or invoice line's ``Total`` is its quantity times price less discount and its ``Tax``
  what its ``TaxRule`` gives (``TaxPercent`` of ``/ref/tax``) on that total, to the cent (Purchase
  Order Line Model: "Line Total. For validation"; "Tax" required) — a line that says 0 where
  the rule gives tax breaks the contract;
- ``purchaseList``'s ``Search`` covers only OrderNumber, Status, Supplier, InvoiceNumber and
  CreditNoteNumber (its parameter description) — never a note.
Headers ``api-auth-accountid`` / ``api-auth-applicationkey`` are required (403 otherwise); the
limit of 60 calls a minute answers 503; errors are ``[{"ErrorCode", "Exception"}]`` with texts
kept neutral (Cin7 publishes none: a client must decide from state it reads back, never from a
message's wording; ``violations`` keeps what was wrong, for the tests). Any create can lose its
answer after it is committed (the shared ``lose_response`` fault).
"""

from __future__ import annotations

import functools
import logging
import uuid
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml
from jsonschema.exceptions import ValidationError as SchemaError
from openapi_schema_validator import OAS30Validator
from referencing import Registry, Resource
from werkzeug.wrappers import Request, Response

from connections.sandbox.base import Simulator, json_response

logger = logging.getLogger(__name__)

SPEC_FILE = Path(__file__).parent / "data" / "cin7-openapi.yaml"
SUPPLIER_REQUIRED = ("Name", "Currency", "PaymentTerm", "AccountPayable", "TaxRule")
ORDER_REQUIRED = ("Memo", "Status", "Lines")  # Purchase Order Model table
SEARCHED = ("OrderNumber", "Status", "Supplier", "InvoiceNumber", "CreditNoteNumber")
NEUTRAL = {400: "The request could not be processed.", 404: "Not found."}
CENT = Decimal("0.01")
MAX_LIMIT = 1000


@functools.lru_cache(maxsize=1)
def spec() -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with SPEC_FILE.open() as handle:
        return yaml.load(handle, Loader=loader)  # noqa: S506  (a safe loader, our own file)


@functools.lru_cache(maxsize=1)
def registry() -> Registry:
    return Registry().with_resource("cin7", Resource.opaque(spec()))


def _validator(schema: dict[str, Any]) -> OAS30Validator:
    wrapped = {"$ref": schema["$ref"].replace("#/", "cin7#/")} if "$ref" in schema else schema
    return OAS30Validator(wrapped, registry=registry())


def operation(method: str, path: str) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """The contract's operation for ``method`` on ``path`` and the query parameters it allows
    (the ones baked into its path keys)."""
    found, params = None, []
    for key, item in spec()["paths"].items():
        base = key.split("?", 1)[0]
        op = item.get(method.lower())
        if base != path or op is None:
            continue
        baked = [p for p in op.get("parameters", []) if p.get("in") in ("path", "query")]
        if found is None or len(baked) > len(params):
            found, params = op, baked
    return (found, params) if found is not None else None


def _typed(value: str, schema: dict[str, Any]) -> bool:
    kind = schema.get("type")
    if kind == "number":
        try:
            float(value)
        except ValueError:
            return False
        return True
    if kind == "boolean":
        return value.lower() in ("true", "false")
    return True


def cin7_error(status: int, message: str) -> Response:
    return json_response([{"ErrorCode": status, "Exception": message}], status)


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Cin7Simulator(Simulator):
    """One Cin7 Core account."""

    name = "cin7"
    kind = "cin7"
    label = "Cin7 Core"
    default_port = 8106

    def __init__(self, *, rate_limit_per_minute: int | None = 60) -> None:
        super().__init__(rate_limit_per_minute=rate_limit_per_minute)
        self.account_id = str(uuid.uuid4())
        self.application_key = str(uuid.uuid4())
        self.suppliers: dict[str, dict[str, Any]] = {}
        self.accounts: dict[str, dict[str, Any]] = {}
        self.purchases: dict[str, dict[str, Any]] = {}
        self.tax_rules: dict[str, dict[str, Any]] = {}
        # A new Cin7 account comes with its tax rules (the demo's: exempt, and 25% on purchases).
        self.put_tax_rule("Tax Exempt", 0)
        self.put_tax_rule("Tax on Purchases", 25)
        self.violations: list[str] = []
        self.api_requests = 0
        self.limited = 0  # requests answered 503 (over the limit)

    # -- HTTP -------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        if (
            request.headers.get("api-auth-accountid"),
            request.headers.get("api-auth-applicationkey"),
        ) != (self.account_id, self.application_key):
            return cin7_error(403, "Incorrect credentials!")
        if self.rate_limit.check(self.application_key) is not None:
            with self.lock:
                self.limited += 1
            return cin7_error(503, "You have exceeded the limit of 60 calls per 60 seconds.")
        with self.lock:
            self.api_requests += 1
        return self.apply_fault(f"{request.method} {request.path}", lambda: self._checked(request))

    def _checked(self, request: Request) -> Response:
        path = "/" + request.path.split("/ExternalApi/v2/", 1)[-1].strip("/")
        found = operation(request.method, path)
        if found is None:
            return self._refuse(f"{request.method} {path} is not in the Cin7 Core API.", 404)
        op, allowed = found
        names = {p["name"].lower(): p for p in allowed}
        for key, value in request.args.items():
            param = names.get(key.lower())
            if param is None:
                return self._refuse(f"{request.method} {path}: the contract has no “{key}”.")
            if not _typed(value, param.get("schema") or {}):
                kind = (param.get("schema") or {}).get("type")
                return self._refuse(f"{request.method} {path}: “{key}={value}” is not a {kind}.")
        body: Any = None
        if request.method in ("POST", "PUT"):
            body = request.get_json(silent=True)
            if not isinstance(body, dict):
                return self._refuse(f"{request.method} {path}: the body is not a JSON object.")
            schema = (
                ((op.get("requestBody") or {}).get("content") or {})
                .get("application/json", {})
                .get("schema")
            )
            if schema:
                try:
                    _validator(schema).validate(body)
                except SchemaError as exc:
                    return self._refuse(
                        f"{request.method} {path}: {exc.message} at {list(exc.path)}."
                    )
        try:
            with self.lock:
                status, answer = self._route(request.method, path, request.args, body)
        except Cin7Refusal as exc:
            with self.lock:
                if exc.breaks_contract:
                    self.violations.append(f"{request.method} {path}: {exc.message}")
            return cin7_error(exc.status, NEUTRAL.get(exc.status, "The request failed."))
        schema = (
            (((op.get("responses") or {}).get(str(status)) or {}).get("content") or {})
            .get("application/json", {})
            .get("schema")
        )
        if schema:
            try:
                _validator(schema).validate(answer)
            except SchemaError as exc:
                self.violations.append(f"answer to {request.method} {path}: {exc.message}")
        return json_response(answer, status)

    def _refuse(self, message: str, status: int = 400) -> Response:
        with self.lock:
            self.violations.append(message)
        return cin7_error(status, NEUTRAL.get(status, "The request failed."))

    # -- resources --------------------------------------------------------------------------

    def _route(self, method: str, path: str, args: Any, body: Any) -> tuple[int, Any]:
        if path == "/me" and method == "GET":
            return 200, {"Company": "ML Connector Demo Ltd", "Currency": "EUR", "TimeZone": "UTC"}
        if path == "/supplier":
            return 200, self._suppliers(method, args, body)
        if path == "/ref/tax" and method == "GET":
            rows = sorted(self.tax_rules.values(), key=lambda t: t["Name"])
            return 200, self._page(rows, args, "TaxRuleList")
        if path == "/purchase/order" and method == "GET":
            return 200, self._order_of(self._task({"TaskID": args.get("TaskID")}))
        if path == "/purchase/invoice" and method == "GET":
            return 200, self._invoice_of(self._task({"TaskID": args.get("TaskID")}))
        if path == "/ref/account" and method == "GET":
            rows = sorted(self.accounts.values(), key=lambda a: a["Code"])
            return 200, self._page(rows, args, "AccountsList")
        if path == "/purchase" and method == "POST":
            return 200, self._new_purchase(body)
        if path == "/purchase" and method == "GET":
            return 200, self._purchase(args.get("ID", ""))
        if path == "/purchaseList" and method == "GET":
            return 200, self._purchase_list(args)
        if path == "/purchase/order" and method == "POST":
            return 200, self._order(body)
        if path == "/purchase/invoice" and method == "POST":
            return 200, self._invoice(body)
        raise Cin7Refusal(404, f"{method} {path} is not simulated.")

    def _page(self, rows: list[dict[str, Any]], args: Any, key: str) -> dict[str, Any]:
        try:
            page = max(1, int(float(args.get("Page", 1))))
            limit = int(float(args.get("Limit", 100)))
        except ValueError:
            raise Cin7Refusal(400, "Page and Limit are numbers.") from None
        if not 1 <= limit <= MAX_LIMIT:
            raise Cin7Refusal(400, "Limit must be between 1 and 1000.")
        start = (page - 1) * limit
        return {"Total": len(rows), "Page": page, key: rows[start : start + limit]}

    def _suppliers(self, method: str, args: Any, body: Any) -> dict[str, Any]:
        if method == "GET":
            rows = sorted(self.suppliers.values(), key=lambda s: s["Name"])
            since = args.get("ModifiedSince")
            if since:
                rows = [s for s in rows if s["LastModifiedOn"] >= since.rstrip("Z")]
            if args.get("ID"):
                rows = [s for s in rows if s["ID"] == args["ID"]]
            if args.get("Name"):
                rows = [s for s in rows if s["Name"] == args["Name"]]
            return self._page(rows, args, "SupplierList")
        missing = [f for f in SUPPLIER_REQUIRED if not str(body.get(f) or "").strip()]
        if method == "POST":
            if missing:
                raise Cin7Refusal(400, f"supplier without {', '.join(missing)}", True)
            supplier = {
                **{f"AdditionalAttribute{n}": "" for n in range(1, 11)},
                "Status": "Active",
                "AttributeSet": "",
                "Discount": 0,
                "Comments": "",
                "TaxNumber": "",
                "Addresses": [],
                "Contacts": [],
                **body,
                "ID": str(uuid.uuid4()),
                "LastModifiedOn": now().rstrip("Z"),
            }
        else:
            current = self.suppliers.get(str(body.get("ID") or ""))
            if current is None:
                raise Cin7Refusal(400, "Supplier with ID not found.")
            supplier = {**current, **body, "LastModifiedOn": now().rstrip("Z")}
        self.suppliers[supplier["ID"]] = supplier
        return {"Total": 1, "Page": 1, "SupplierList": [supplier]}

    def _new_purchase(self, body: dict[str, Any]) -> dict[str, Any]:
        supplier = self.suppliers.get(str(body.get("SupplierID") or ""))
        if supplier is None and body.get("Supplier"):
            supplier = next(
                (s for s in self.suppliers.values() if s["Name"] == body["Supplier"]), None
            )
        if supplier is None:
            raise Cin7Refusal(400, "Supplier not found.")
        if body.get("Approach") not in ("INVOICE", "STOCK"):
            raise Cin7Refusal(400, "Approach should be INVOICE or STOCK.")
        task = {
            "ID": str(uuid.uuid4()),
            "Supplier": supplier["Name"],
            "SupplierID": supplier["ID"],
            "Approach": body["Approach"],
            "Status": "DRAFT",
            "TaxRule": body.get("TaxRule") or supplier.get("TaxRule"),
            "Note": body.get("Note") or "",
            "OrderNumber": f"PO-{len(self.purchases) + 1:05d}",
            "Currency": supplier.get("Currency"),
            "Updated": now(),
            "Order": {"Status": "NOT AVAILABLE", "Lines": []},
            "Invoice": {"Status": "NOT AVAILABLE", "Lines": []},
        }
        self.purchases[task["ID"]] = task
        return {"ID": task["ID"], "Supplier": task["Supplier"], "Status": task["Status"]}

    def _purchase(self, task_id: str) -> dict[str, Any]:
        task = self.purchases.get(task_id)
        if task is None:
            raise Cin7Refusal(400, "Purchase not found.")
        return {
            "ID": task["ID"],
            "Supplier": task["Supplier"],
            "Status": task["Status"],
            "Note": task["Note"],
        }

    def _purchase_list(self, args: Any) -> dict[str, Any]:
        """Purchases whose OrderNumber, Status, Supplier, InvoiceNumber or CreditNoteNumber
        contains ``Search`` (the parameter's description) — nothing else is searched."""
        wanted = str(args.get("Search") or "").lower()
        rows = []
        for task in self.purchases.values():
            row = self._list_row(task)
            text = " ".join(str(row.get(field) or "") for field in SEARCHED).lower()
            if not wanted or wanted in text:
                rows.append(row)
        return self._page(rows, args, "PurchaseList")

    @staticmethod
    def _list_row(task: dict[str, Any]) -> dict[str, Any]:
        invoice = task["Invoice"]
        return {
            "ID": task["ID"],
            "BaseCurrency": "EUR",
            "BlindReceipt": False,
            "CombinedInvoiceStatus": invoice["Status"],
            "CombinedPaymentStatus": "UNPAID",
            "CombinedReceivingStatus": "NOT RECEIVED",
            "CreditNoteNumber": "",
            "CreditNoteStatus": "NOT AVAILABLE",
            "DropShipTaskID": None,
            "InvoiceAmount": 0,
            "InvoiceDate": invoice.get("InvoiceDate") or "",
            "InvoiceDueDate": invoice.get("InvoiceDueDate") or "",
            "InvoiceNumber": invoice.get("InvoiceNumber") or "",
            "InvoiceStatus": invoice["Status"],
            "IsServiceOnly": False,
            "LastUpdatedDate": task["Updated"],
            "OrderDate": task["Updated"],
            "OrderNumber": task["OrderNumber"],
            "OrderStatus": task["Order"]["Status"],
            "PaidAmount": 0,
            "RequiredBy": None,
            "Status": task["Status"],
            "StockReceivedStatus": "NOT AVAILABLE",
            "Supplier": task["Supplier"],
            "SupplierCurrency": task.get("Currency") or "EUR",
            "SupplierID": task["SupplierID"],
            "Type": "Simple Purchase",
            "UnstockStatus": "NOT AVAILABLE",
        }

    def _task(self, body: dict[str, Any]) -> dict[str, Any]:
        task = self.purchases.get(str(body.get("TaskID") or ""))
        if task is None:
            raise Cin7Refusal(400, "TaskID not found.")
        return task

    def _lines_checked(self, lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Each line's Total and Tax as the contract has them validated (see the docstring)."""
        for n, line in enumerate(lines, start=1):
            try:
                quantity = Decimal(str(line.get("Quantity")))
                price = Decimal(str(line.get("Price")))
                discount = Decimal(str(line.get("Discount") or 0))
                total = Decimal(str(line.get("Total")))
                tax = Decimal(str(line.get("Tax")))
            except (InvalidOperation, ValueError):
                raise Cin7Refusal(400, f"line {n}: amounts are not numbers", True) from None
            rule = self.tax_rules.get(str(line.get("TaxRule") or ""))
            if rule is None:
                raise Cin7Refusal(400, f"line {n}: no tax rule {line.get('TaxRule')!r}", True)
            expected = (quantity * price * (100 - discount) / 100).quantize(CENT, ROUND_HALF_UP)
            if abs(total - expected) > CENT:
                raise Cin7Refusal(400, f"line {n}: Total {total} is not {expected}", True)
            due = (total * Decimal(str(rule["TaxPercent"])) / 100).quantize(CENT, ROUND_HALF_UP)
            if abs(tax - due) > CENT:
                raise Cin7Refusal(400, f"line {n}: Tax {tax} is not {due} by its rule", True)
        return lines

    @staticmethod
    def _totals(lines: list[dict[str, Any]]) -> dict[str, float]:
        before = sum((Decimal(str(line["Total"])) for line in lines), Decimal(0))
        tax = sum((Decimal(str(line["Tax"])) for line in lines), Decimal(0))
        return {"TotalBeforeTax": float(before), "Tax": float(tax), "Total": float(before + tax)}

    def _order(self, body: dict[str, Any]) -> dict[str, Any]:
        missing = [f for f in ORDER_REQUIRED if f not in body]
        if missing:
            raise Cin7Refusal(400, f"purchase order without {', '.join(missing)}", True)
        task = self._task(body)
        if task["Order"]["Status"] not in ("DRAFT", "NOT AVAILABLE"):
            raise Cin7Refusal(400, "the order is not DRAFT")
        lines = self._lines_checked(list(body.get("Lines") or []))
        task["Order"] = {
            "Status": body.get("Status") or "DRAFT",
            "Lines": lines,
            "Memo": body["Memo"],
        }
        task["Status"] = "ORDERED" if task["Order"]["Status"] == "AUTHORISED" else "ORDERING"
        return self._order_of(task)

    def _order_of(self, task: dict[str, Any]) -> dict[str, Any]:
        order = task["Order"]
        return {
            "TaskID": task["ID"],
            "Status": order["Status"],
            "Memo": order.get("Memo") or "",
            "Lines": order["Lines"],
            "AdditionalCharges": [],
            "CombineAdditionalCharges": False,
            **self._totals(order["Lines"]),
        }

    def _invoice(self, body: dict[str, Any]) -> dict[str, Any]:
        task = self._task(body)
        if task["Order"]["Status"] != "AUTHORISED":
            raise Cin7Refusal(400, "the order is not AUTHORISED")
        if task["Invoice"]["Status"] not in ("DRAFT", "NOT AVAILABLE"):
            raise Cin7Refusal(400, "the invoice is not DRAFT")
        lines = self._lines_checked(list(body.get("Lines") or []))
        for line in lines:
            account = str(line.get("Account") or "")
            if account and account not in self.accounts:
                raise Cin7Refusal(400, f"no account {account}")
        task["Invoice"] = {
            "Status": body.get("Status") or "DRAFT",
            "InvoiceNumber": body.get("InvoiceNumber"),
            "InvoiceDate": body.get("InvoiceDate") or "",
            "InvoiceDueDate": body.get("InvoiceDueDate") or "",
            "Lines": lines,
        }
        if task["Invoice"]["Status"] == "AUTHORISED":
            task["Status"] = "INVOICED"
        return self._invoice_of(task)

    def _invoice_of(self, task: dict[str, Any]) -> dict[str, Any]:
        invoice = task["Invoice"]
        totals = self._totals(invoice["Lines"])
        return {
            "TaskID": task["ID"],
            "Status": invoice["Status"],
            "InvoiceNumber": invoice.get("InvoiceNumber") or "",
            "InvoiceDate": invoice.get("InvoiceDate") or "",
            "InvoiceDueDate": invoice.get("InvoiceDueDate") or "",
            "Lines": invoice["Lines"],
            "AdditionalCharges": [],
            "CombineAdditionalCharges": False,
            "InvoiceTotalAmount": totals["Total"],
            "InvoiceTotalTaxAmount": totals["Tax"],
            **totals,
        }

    # -- sandbox ----------------------------------------------------------------------------

    def put_account(self, code: str, name: str, kind: str = "EXPENSE") -> None:
        """An account of Cin7's chart, with every field its answer carries."""
        self.accounts[code] = {
            "Code": code,
            "Name": name,
            "Type": kind,
            "Class": kind,
            "Status": "ACTIVE",
            "Description": "",
            "DisplayName": f"{code}: {name}",
            "ForPayments": False,
            "SystemAccount": None,
            "OldCode": None,
            "BankAccountId": None,
            "BankAccountNumber": None,
        }

    def put_tax_rule(self, name: str, percent: str | float, *, purchase: bool = True) -> None:
        """A tax rule as ``/ref/tax`` lists it, with every field its answer carries."""
        self.tax_rules[name] = {
            "ID": str(uuid.uuid4()),
            "Name": name,
            "TaxPercent": float(percent),
            "TaxInclusive": False,
            "IsActive": True,
            "IsTaxForPurchase": purchase,
            "IsTaxForSale": not purchase,
            "Account": "820",
            "Components": [
                {
                    "ID": str(uuid.uuid4()),
                    "Name": name,
                    # the contract types these three as strings
                    "Percent": str(percent),
                    "AccountCode": "820",
                    "ComponentOrder": "1",
                    "Compound": "false",
                }
            ],
        }

    def seed(self, **options: Any) -> None:
        with self.lock:
            if self.accounts:
                return
            for code, name in (
                ("200", "Sales"),
                ("310", "Cost of goods sold"),
                ("429", "General expenses"),
                ("800", "Accounts payable"),
            ):
                self.put_account(code, name)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "keys": (self.account_id, self.application_key),
                "suppliers": self.suppliers,
                "accounts": self.accounts,
                "purchases": self.purchases,
                "tax_rules": self.tax_rules,
            }

    def restore(self, snapshot: dict[str, Any]) -> None:
        with self.lock:
            self.account_id, self.application_key = snapshot["keys"]
            self.suppliers = snapshot["suppliers"]
            self.accounts = snapshot["accounts"]
            self.purchases = snapshot["purchases"]
            self.tax_rules = snapshot.get("tax_rules") or self.tax_rules
            if not self.tax_rules:
                self.put_tax_rule("Tax Exempt", 0)
                self.put_tax_rule("Tax on Purchases", 25)

    def state_summary(self) -> dict[str, Any]:
        return {
            **super().state_summary(),
            "suppliers": len(self.suppliers),
            "purchases": len(self.purchases),
            "api_requests": self.api_requests,
            "limited": self.limited,
            "violations": len(self.violations),
        }

    def connection_values(self, url: str) -> dict[str, Any]:
        return {
            "kind": "cin7",
            "credentials": {"account_id": self.account_id, "application_key": self.application_key},
            "settings": {"base_url": url.rstrip("/") + "/ExternalApi/v2/"},
        }


class Cin7Refusal(Exception):
    """A refusal; ``breaks_contract`` when the request broke a published rule (recorded)."""

    def __init__(self, status: int, message: str, breaks_contract: bool = False) -> None:
        super().__init__(message)
        self.status, self.message, self.breaks_contract = status, message, breaks_contract
