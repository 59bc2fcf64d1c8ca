"""Stripe billing in the simulator: customers, invoices and their lines, prices and invoice
items, as the contract describes them."""

from __future__ import annotations

import copy
import logging
import secrets
from typing import Any

from connections.sandbox.stripe.common import (
    TEMPLATES,
    StripeError,
)

logger = logging.getLogger(__name__)


class BillingApi:
    """Customers, invoices, prices and invoice items.

    A mixin of ``StripeSimulator``, whose state it uses."""

    objects: dict[str, dict[str, dict[str, Any]]]
    events: list[dict[str, Any]]

    # -- resources --------------------------------------------------------------------------

    def api_customers(
        self, method: str, rest: list[str], p: dict[str, Any], req: dict[str, Any]
    ) -> Any:
        if method == "POST" and not rest:
            tax_ids = p.get("tax_id_data") or []
            if not isinstance(tax_ids, list) or not all(isinstance(t, dict) for t in tax_ids):
                raise StripeError(
                    400, "invalid_request_error", "Invalid tax_id_data", "tax_id_data"
                )
            customer = self.new(
                "customer",
                email=p.get("email"),
                name=p.get("name"),
                phone=p.get("phone"),
                description=p.get("description"),
                metadata=p.get("metadata", {}),
                currency=None,
                balance=0,
                address=p.get("address") or None,
            )
            customer["tax_ids"] = {
                "object": "list",
                "data": [
                    {
                        "id": f"txi_{secrets.token_hex(7)}",
                        "object": "tax_id",
                        "type": t.get("type"),
                        "value": t.get("value"),
                        "customer": customer["id"],
                    }
                    for t in tax_ids
                ],
                "has_more": False,
                "url": f"/v1/customers/{customer['id']}/tax_ids",
            }
            self._event("customer.created", customer, req)
            return customer
        if method == "GET" and rest == ["search"]:
            return self._search("customer", p, "/v1/customers/search")
        if method == "GET" and not rest:
            items = [
                c
                for c in self.objects["customer"].values()
                if not p.get("email") or c.get("email") == p["email"]
            ]
            return self._list(items, p, "/v1/customers")
        customer = self.get("customer", rest[0])
        if method == "POST":
            previous = {k: customer.get(k) for k in p if k in customer}
            for k, v in p.items():
                if k == "metadata":
                    customer["metadata"] = {**customer["metadata"], **v}
                elif k in ("email", "name", "phone", "description", "address"):
                    customer[k] = v or None
            self._event("customer.updated", customer, req, previous)
        return customer

    def _totals(self, invoice: dict[str, Any]) -> None:
        lines = invoice["lines"]["data"]
        total = sum(int(line["amount"]) for line in lines)
        invoice.update(
            subtotal=total,
            subtotal_excluding_tax=total,
            total=total,
            total_excluding_tax=total,
            amount_due=total,
            amount_remaining=max(0, total - invoice["amount_paid"]),
        )

    def api_invoices(
        self, method: str, rest: list[str], p: dict[str, Any], req: dict[str, Any]
    ) -> Any:
        if method == "POST" and not rest:
            customer = self.get("customer", p.get("customer", ""))
            now = self.clock()
            due = p.get("due_date")
            if not due and p.get("days_until_due"):
                due = now + int(p["days_until_due"]) * 86400
            invoice = self.new(
                "invoice",
                customer=customer["id"],
                customer_email=customer.get("email"),
                customer_name=customer.get("name"),
                currency=p.get("currency", "usd"),
                collection_method=p.get("collection_method", "charge_automatically"),
                auto_advance=p.get("auto_advance") == "true",
                status="draft",
                number=None,
                due_date=int(due) if due else None,
                description=p.get("description"),
                metadata=p.get("metadata", {}),
                amount_paid=0,
                amount_overpaid=0,
                attempted=False,
                attempt_count=0,
                hosted_invoice_url=None,
                lines={"object": "list", "data": [], "has_more": False, "url": ""},
                status_transitions={
                    "finalized_at": None,
                    "paid_at": None,
                    "marked_uncollectible_at": None,
                    "voided_at": None,
                },
            )
            invoice["lines"]["url"] = f"/v1/invoices/{invoice['id']}/lines"
            self._totals(invoice)
            self._event("invoice.created", invoice, req)
            return invoice
        if method == "GET" and rest == ["search"]:
            return self._search("invoice", p, "/v1/invoices/search")
        if method == "GET" and not rest:
            items = [
                i
                for i in self.objects["invoice"].values()
                if (not p.get("customer") or i["customer"] == p["customer"])
                and (not p.get("status") or i["status"] == p["status"])
            ]
            return self._list(items, p, "/v1/invoices")
        invoice = self.get("invoice", rest[0])
        if method == "POST" and rest[1:] == ["finalize"]:
            if invoice["status"] != "draft":
                raise StripeError(
                    400,
                    "invalid_request_error",
                    "This invoice is already finalized, you can't re-finalize a non-draft invoice.",
                    code="invoice_not_editable",
                )
            self.invoice_sequence += 1
            invoice.update(
                status="open",
                number=f"SBX-{self.invoice_sequence:04d}",
                hosted_invoice_url=f"https://invoice.stripe.sandbox/{invoice['id']}",
            )
            invoice["status_transitions"]["finalized_at"] = self.clock()
            self._event("invoice.finalized", invoice, req, {"status": "draft"})
            return invoice
        if method == "POST" and rest[1:] == ["pay"]:
            return self.pay_invoice(invoice["id"], request=req)
        if method == "POST" and rest[1:] == ["add_lines"]:
            return self._add_lines(invoice, p, req)
        if method == "POST" and rest[1:] == ["remove_lines"]:
            return self._remove_lines(invoice, p, req)
        if method == "POST" and len(rest) == 1:
            if invoice["status"] != "draft" and set(p) - {"metadata"}:
                raise StripeError(
                    400,
                    "invalid_request_error",
                    "Finalized invoices can't be updated in this way",
                    code="invoice_not_editable",
                )
            invoice["metadata"] = {**invoice["metadata"], **p.get("metadata", {})}
            self._event("invoice.updated", invoice, req)
        return invoice

    @staticmethod
    def _line_params(invoice: dict[str, Any], p: dict[str, Any], what: str) -> list[dict]:
        """The ``lines`` of a bulk line request, on a draft invoice only."""
        lines = p.get("lines")
        if not (isinstance(lines, list) and lines and all(isinstance(x, dict) for x in lines)):
            raise StripeError(
                400, "invalid_request_error", "Missing required param: lines.", "lines"
            )
        if invoice["status"] != "draft":
            raise StripeError(
                400,
                "invalid_request_error",
                f"You can only {what} draft invoices.",
                code="invoice_not_editable",
            )
        return lines

    def _add_lines(
        self, invoice: dict[str, Any], p: dict[str, Any], req: dict[str, Any]
    ) -> dict[str, Any]:
        """``POST /v1/invoices/{id}/add_lines``: every line or none (draft invoices only)."""
        lines = self._line_params(invoice, p, "add lines to")
        for n, line in enumerate(lines):
            price_id = (
                (line.get("pricing") or {}).get("price")
                if isinstance(line.get("pricing"), dict)
                else None
            )
            if price_id:
                price = self.get("price", price_id)
                if not price["active"]:
                    raise StripeError(
                        400,
                        "invalid_request_error",
                        f"The price {price_id} is not active.",
                        f"lines[{n}][pricing][price]",
                    )
                line["amount"] = price["unit_amount"] * int(line.get("quantity") or 1)
                line["metadata"] = {**(line.get("metadata") or {}), "price": price_id}
            try:
                int(line["amount"])
            except (KeyError, TypeError, ValueError):
                raise StripeError(
                    400, "invalid_request_error", "Invalid integer: amount", f"lines[{n}][amount]"
                ) from None
        for n, line in enumerate(lines):
            self._add_item(
                invoice["customer"],
                invoice,
                line,
                req,
                currency=invoice["currency"],
                field=f"lines[{n}][amount]",
            )
        if isinstance(p.get("invoice_metadata"), dict):
            invoice["metadata"] = {**invoice["metadata"], **p["invoice_metadata"]}
        self._event("invoice.updated", invoice, req)
        return invoice

    def _remove_lines(
        self, invoice: dict[str, Any], p: dict[str, Any], req: dict[str, Any]
    ) -> dict[str, Any]:
        """``POST /v1/invoices/{id}/remove_lines``: ``lines[i][id]``, ``lines[i][behavior]``."""
        lines = self._line_params(invoice, p, "remove lines from")
        present = {line["id"] for line in invoice["lines"]["data"]}
        wanted = {str(line.get("id")) for line in lines}
        if not wanted <= present:
            raise StripeError(
                400, "invalid_request_error", "No such line item on this invoice.", "lines"
            )
        kept = [line for line in invoice["lines"]["data"] if line["id"] not in wanted]
        invoice["lines"]["data"] = kept
        self._totals(invoice)
        self._event("invoice.updated", invoice, req)
        return invoice

    def api_prices(
        self, method: str, rest: list[str], p: dict[str, Any], req: dict[str, Any]
    ) -> Any:
        if method == "POST" and not rest:
            try:
                amount = int(p["unit_amount"])
            except (KeyError, TypeError, ValueError):
                raise StripeError(
                    400, "invalid_request_error", "Invalid integer: unit_amount", "unit_amount"
                ) from None
            product_data = p.get("product_data") if isinstance(p.get("product_data"), dict) else {}
            product = (
                p.get("product")
                or self.new("product", name=product_data.get("name") or "Product", active=True)[
                    "id"
                ]
            )
            return self.new(
                "price",
                active=True,
                currency=str(p.get("currency", "usd")).lower(),
                unit_amount=amount,
                product=product,
                type="one_time",
                metadata=p.get("metadata") if isinstance(p.get("metadata"), dict) else {},
            )
        if method == "GET" and not rest:
            return self._list(list(self.objects["price"].values()), p, "/v1/prices")
        price = self.get("price", rest[0])
        if method == "POST":
            if "unit_amount" in p or "currency" in p:
                raise StripeError(
                    400,
                    "invalid_request_error",
                    "A price's amount and currency cannot be changed: create a new price.",
                )
            if "active" in p:
                price["active"] = str(p["active"]).lower() == "true"
            if isinstance(p.get("metadata"), dict):
                price["metadata"] = {**price["metadata"], **p["metadata"]}
        return price

    def api_invoiceitems(
        self, method: str, rest: list[str], p: dict[str, Any], req: dict[str, Any]
    ) -> Any:
        if method != "POST" or rest:
            raise StripeError(404, "invalid_request_error", "Unrecognized request URL")
        customer = self.get("customer", p.get("customer", ""))
        invoice = self.get("invoice", p["invoice"]) if p.get("invoice") else None
        if invoice is not None and invoice["status"] != "draft":
            raise StripeError(
                400,
                "invalid_request_error",
                "You can only add invoice items to draft invoices.",
                "invoice",
                "invoice_not_editable",
            )
        return self._add_item(
            customer["id"],
            invoice,
            p,
            req,
            currency=p.get("currency", "usd"),
        )

    def _add_item(
        self,
        customer: str,
        invoice: dict[str, Any] | None,
        p: dict[str, Any],
        req: dict[str, Any],
        *,
        currency: str,
        field: str = "amount",
    ) -> dict[str, Any]:
        """An invoice item, and its line on ``invoice`` when it has one."""
        try:
            amount = int(p["amount"])
        except (KeyError, TypeError, ValueError):
            raise StripeError(
                400, "invalid_request_error", f"Invalid integer: {field}", field
            ) from None
        item = self.new(
            "invoiceitem",
            customer=customer,
            amount=amount,
            currency=currency,
            description=p.get("description"),
            invoice=invoice["id"] if invoice else None,
            quantity=1,
            metadata=p.get("metadata", {}) if isinstance(p.get("metadata"), dict) else {},
            date=self.clock(),
        )
        if invoice is not None:
            line = copy.deepcopy(TEMPLATES["invoice"]["lines"]["data"][0])
            line.update(
                id=f"il_{secrets.token_hex(7)}",
                amount=amount,
                currency=item["currency"],
                description=item["description"],
                invoice=invoice["id"],
                metadata=item["metadata"],
            )
            invoice["lines"]["data"].append(line)
            self._totals(invoice)
        self._event("invoiceitem.created", item, req)
        return item
