"""The Cin7 Core client against the Cin7 simulator, which checks every request and answer
against Cin7's OpenAPI file: paging up to 1,000, ModifiedSince, 503 as "slow down", errors in
plain words, and a purchase's order and invoice in the order Cin7 demands."""

from __future__ import annotations

import pytest

from connections.models import Connection
from connections.providers.cin7 import Cin7Core
from connections.providers.errors import Rejected
from connections.providers.registry import client_for
from connections.sandbox.base import Served
from connections.sandbox.cin7 import Cin7Simulator


@pytest.fixture
def sim(cin7_sim: Served) -> Cin7Simulator:
    return cin7_sim.app  # type: ignore[return-value]


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def cin7(cin7_connection: Connection, sleeps: list[float]) -> Cin7Core:
    return client_for(cin7_connection, sleep=sleeps.append)  # type: ignore[return-value]


SUPPLIER = {
    "Currency": "EUR",
    "PaymentTerm": "30 days",
    "AccountPayable": "800",
    "TaxRule": "Tax Exempt",
}


def test_suppliers_are_read_a_thousand_a_page(cin7: Cin7Core, sim: Cin7Simulator) -> None:
    for n in range(2500):
        cin7_supplier = {**SUPPLIER, "Name": f"Supplier {n:04d}", "AdditionalAttribute1": f"S{n}"}
        sim._suppliers("POST", {}, cin7_supplier)
    before = sim.api_requests
    names = [s["Name"] for s in cin7.list_suppliers()]
    assert len(names) == 2500 and sim.api_requests - before == 3
    assert sim.violations == []


def test_changed_suppliers_only(cin7: Cin7Core, sim: Cin7Simulator) -> None:
    old = cin7.create_supplier({**SUPPLIER, "Name": "Old GmbH"})
    since = old["LastModifiedOn"]
    new = cin7.create_supplier({**SUPPLIER, "Name": "New GmbH"})
    cin7.update_supplier({"ID": old["ID"], "Comments": "touched"})
    changed = sorted(s["Name"] for s in cin7.list_suppliers(modified_since=since))
    assert "New GmbH" in changed and new["ID"] != old["ID"]
    assert sim.violations == []


def test_a_503_is_slowing_down_not_a_failure(
    cin7: Cin7Core, sim: Cin7Simulator, sleeps: list[float]
) -> None:
    sim.faults.add("status", status=503, retry_after=1, count=2, match="GET /ExternalApi/v2/ref")
    assert cin7.list_accounts() == []
    assert sleeps.count(1.0) == 2


def test_errors_are_plain_and_the_contract_refuses_what_cin7_would(
    cin7: Cin7Core, sim: Cin7Simulator
) -> None:
    """Cin7 publishes no error texts: the simulator answers neutral ones (no client can match
    a wording) and records what broke the contract."""
    for call in (
        lambda: cin7.create_supplier({"Name": "", "Currency": ""}),
        lambda: cin7.http.get("supplier", params={"Colour": "red"}),
        lambda: cin7.http.get("supplier", params={"Page": "two"}),
        lambda: cin7.create_purchase_invoice({"TaskID": "x", "Lines": "not a list"}),
    ):
        with pytest.raises(Rejected) as refused:
            call()
        assert refused.value.status == 400
        assert "The request could not be processed." in refused.value.message
    assert len(sim.violations) == 4, sim.violations  # each recorded, none worded to the client


def test_a_purchase_is_ordered_before_it_is_invoiced(cin7: Cin7Core, sim: Cin7Simulator) -> None:
    sim.put_account("429", "General expenses")
    supplier = cin7.create_supplier({**SUPPLIER, "Name": "Nord AB"})
    task = cin7.create_purchase({"SupplierID": supplier["ID"], "Approach": "INVOICE"})
    line = {  # every field the contract's line requires (a service line: no product)
        "ProductID": "",
        "SKU": "",
        "Name": "Paper",
        "Quantity": 1,
        "Price": 10,
        "Discount": 0,
        "Tax": 0,
        "TaxRule": "Tax Exempt",
        "Account": "429",
        "Comment": "",
        "Total": 10,
    }
    invoice = {
        "TaskID": task["ID"],
        "InvoiceNumber": "INV-1",
        "InvoiceDate": "2026-11-30T00:00:00",
        "InvoiceDueDate": "2026-12-30T00:00:00",
        "Status": "AUTHORISED",
        "Lines": [line],
    }
    with pytest.raises(Rejected):  # refused: the order is not authorised yet
        cin7.create_purchase_invoice(invoice)
    assert cin7.get_invoice(task["ID"])["Status"] == "NOT AVAILABLE"  # state, not wording
    cin7.authorise_order(task["ID"], [line], memo="CloudSuite PO 1")
    order = cin7.get_order(task["ID"])
    assert (order["Status"], order["Memo"]) == ("AUTHORISED", "CloudSuite PO 1")
    assert cin7.create_purchase_invoice(invoice)["Status"] == "AUTHORISED"
    assert sim.purchases[task["ID"]]["Status"] == "INVOICED"
    assert sim.violations == []


def test_an_order_without_a_memo_or_with_tax_its_rule_does_not_give_breaks_the_contract(
    cin7: Cin7Core, sim: Cin7Simulator
) -> None:
    supplier = cin7.create_supplier({**SUPPLIER, "Name": "Syd AB"})
    task = cin7.create_purchase({"SupplierID": supplier["ID"], "Approach": "INVOICE"})
    line = {
        "ProductID": "",
        "SKU": "",
        "SupplierSKU": "",
        "Name": "Paper",
        "Quantity": 2,
        "Price": 10.5,
        "Discount": 0,
        "Tax": 0,
        "TaxRule": "Tax on Purchases",  # 25 %
        "Comment": "",
        "Total": 21,
    }
    body = {"TaskID": task["ID"], "Status": "AUTHORISED", "Lines": [line]}
    with pytest.raises(Rejected):
        cin7.http.post("purchase/order", json=body)  # no Memo
    with pytest.raises(Rejected):
        cin7.http.post("purchase/order", json={**body, "Memo": ""})  # Tax 0 where 5.25 is due
    assert [v.split(": ", 1)[1] for v in sim.violations] == [
        "purchase order without Memo",
        "line 1: Tax 0 is not 5.25 by its rule",
    ]
    good = {**body, "Memo": "", "Lines": [{**line, "Tax": 5.25}]}
    assert cin7.http.post("purchase/order", json=good).json()["Total"] == 26.25
    rules = {r["Name"]: r["TaxPercent"] for r in cin7.list_tax_rules()}
    assert rules == {"Tax Exempt": 0, "Tax on Purchases": 25}


def test_search_finds_a_purchase_by_its_supplier_never_by_its_note(
    cin7: Cin7Core, sim: Cin7Simulator
) -> None:
    supplier = cin7.create_supplier({**SUPPLIER, "Name": "Väst AB"})
    task = cin7.create_purchase(
        {"SupplierID": supplier["ID"], "Approach": "INVOICE", "Note": "CloudSuite PO 77"}
    )
    assert cin7.find_purchases("CloudSuite PO 77") == []  # Search does not cover the note
    (found,) = cin7.find_purchases("Väst AB")
    assert found["ID"] == task["ID"]
    assert cin7.get_purchase(found["ID"])["Note"] == "CloudSuite PO 77"
