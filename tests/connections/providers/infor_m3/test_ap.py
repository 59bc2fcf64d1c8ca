"""CloudSuite AP through the M3 client and simulator: supplier invoice batches in bulk (heads,
lines, validation: three requests for many invoices), a refusal per invoice, an interrupted post
found again by its correlation id, and what M3 derived the coding to (GLS200MI)."""

from __future__ import annotations

import pytest

from connections.models import Connection
from connections.providers.infor_m3 import InforM3
from connections.providers.registry import client_for
from connections.sandbox.base import Served
from connections.sandbox.m3 import M3Simulator


@pytest.fixture
def sim(m3_sim: Served) -> M3Simulator:
    sim: M3Simulator = m3_sim.app  # type: ignore[assignment]
    sim.state.put_supplier("V1", SUNM="Nord AB", CUCD="SEK", REGR="OFFICE")
    sim.state.ap_rules["OFFICE"] = "6110"
    return sim


@pytest.fixture
def m3(m3_connection: Connection, sim: M3Simulator) -> InforM3:
    return client_for(m3_connection, sleep=lambda s: None)  # type: ignore[return-value]


def invoice(number: str, total: str, *lines: str, vat: str = "0") -> dict:
    return {
        "head": {
            "SUNO": "V1",
            "IVDT": "20261101",
            "SINO": number,
            "CUCD": "SEK",
            "CUAM": total,
            "VTAM": vat,
            "CORI": f"stampli:{number}",
        },
        "lines": [
            {"RDTP": "5", "NLAM": amount, "CHGT": f"line {n}"} for n, amount in enumerate(lines)
        ],
    }


def test_many_invoices_in_three_requests_each_refusal_its_own(
    m3: InforM3, sim: M3Simulator
) -> None:
    before = sim.api_requests
    results = m3.add_ap_invoices(
        [
            invoice("A-1", "1250.00", "1000.00", vat="250.00"),
            invoice("A-2", "99.00", "50.00"),  # the lines do not add up
            {
                **invoice("A-3", "10.00", "10.00"),
                "lines": [{"RDTP": "5", "NLAM": "10.00", "CHGT": "REFUSE"}],
            },
            invoice("A-1", "1250.00", "1000.00", vat="250.00"),  # the same invoice again
        ]
    )
    assert sim.api_requests - before == 3
    (ok, _), (_, differs), (_, refused), (_, repeat) = results
    assert ok and differs and "differs" in differs.mi_message
    assert refused and "Service code" in refused.mi_message
    assert repeat and "already exists" in repeat.mi_message
    assert [i["SINO"] for i in sim.state.ap_invoices()] == ["A-1"]


def test_an_interrupted_post_is_found_by_its_correlation_id(m3: InforM3) -> None:
    ((batch, error),) = m3.add_ap_invoices([invoice("B-1", "500.00", "400.00", vat="100.00")])
    assert error is None
    head = m3.find_ap_invoice(supplier="V1", invoice_number="B-1", correlation="stampli:B-1")
    assert head is not None and head["INBN"] == batch and head["SUPA"] == "50"
    assert m3.find_ap_invoice(supplier="V1", invoice_number="B-1", correlation="other") is None
    lines = m3.ap_postings([head["INBN"]])[head["INBN"]]["lines"]
    assert {line["AIT1"] for line in lines} == {"6110", "2440", "2640"}  # M3 derived the coding
