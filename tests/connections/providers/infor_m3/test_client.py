"""The M3 client against the M3 simulator over real HTTP: MI calls, bulk, errors, auth, faults."""

from __future__ import annotations

from decimal import Decimal

import pytest

from connections.models import Connection
from connections.providers.errors import OutcomeUnknown
from connections.providers.infor_m3 import InforM3, MIError
from connections.providers.registry import client_for
from connections.sandbox.base import Served
from connections.sandbox.m3 import M3Simulator


@pytest.fixture
def m3(m3_connection: Connection, m3_sim: Served) -> InforM3:
    sim: M3Simulator = m3_sim.app  # type: ignore[assignment]
    sim.state.put_customer("C100", CUNM="Acme Stores", CUCD="EUR", MAIL="ap@acme.test")
    sim.state.put_customer("C200", CUNM="Birch Ltd", CUCD="GBP")
    sim.state.put_account("1930", "Bank EUR")
    sim.state.put_account("1510", "Accounts receivable")
    sim.state.add_invoice("C100", "9001", "1210.00", "EUR", vat="210.00", dudt="20261231")
    client = client_for(m3_connection, sleep=lambda s: None)
    assert isinstance(client, InforM3)
    return client


def sim_of(served: Served) -> M3Simulator:
    return served.app  # type: ignore[return-value]


def test_single_calls_are_trimmed_and_carry_cono_and_divi(m3: InforM3, m3_sim: Served) -> None:
    customers = list(m3.list_customers())
    assert [c["CUNO"] for c in customers] == ["C100", "C200"]
    assert customers[0]["CUNM"] == "Acme Stores"  # padded to 36 on the wire, trimmed here
    assert m3.execute("customers.get", {"CUNO": "C200"})[0]["CUCD"] == "GBP"


def test_errors_reported_as_http_200_become_typed_errors(m3: InforM3) -> None:
    with pytest.raises(MIError) as info:
        m3.execute("customers.get", {"CUNO": "NOPE"})
    assert info.value.field == "CUNO" and "does not exist" in info.value.message
    with pytest.raises(MIError, match="must be entered"):
        m3.execute("customers.get", {})


def test_bulk_is_one_request_for_many_transactions(m3: InforM3, m3_sim: Served) -> None:
    before = sim_of(m3_sim).api_requests
    found = m3.execute_bulk("customers.get", [{"CUNO": n} for n in ("C100", "NOPE", "C200")])
    assert [bool(r.records) for r in found] == [True, False, True]
    assert sim_of(m3_sim).api_requests == before + 1


def test_matrix_parameters_limit_records_and_columns(m3: InforM3) -> None:
    rows = m3.execute("customers.list", {}, maxrecs=1, returncols=["CUNO", "CUNM"])
    assert rows == [{"CUNO": "C100", "CUNM": "Acme Stores"}]


def test_changed_since_uses_lmts(m3: InforM3, m3_sim: Served) -> None:
    sim = sim_of(m3_sim)
    mark = sim.state.customers["C200"]["LMTS"] + 1
    sim.state.put_customer("C100", CUNM="Acme Stores Ltd")
    assert [c["CUNO"] for c in m3.list_customers(changed_since=mark)] == ["C100"]


def test_a_receipt_posts_to_the_ledger_and_gl_and_is_safe_to_repeat(
    m3: InforM3,
    m3_sim: Served,
) -> None:
    sim = sim_of(m3_sim)
    line = {
        "TRNO": 1,
        "CUNO": "C100",
        "CINO": "9001",
        "INYR": 2026,
        "PYAM": "1210.00",
        "CUCD": "EUR",
        "AIT1": "1930",
    }
    before = sim.api_requests
    result = m3.add_receipt(batch=7000001, batch_type="ST", lines=[line])
    assert result["steps"] == ["receipts.head", "receipts.line", "receipts.control"]
    assert sim.api_requests - before == 1  # head, line and control in one bulk request
    (receipt,) = sim.state.receipts()
    assert receipt["CUAM"] == Decimal("-1210.00") and sim.state.gl[0]["AIT"][0] == "1930"
    assert sim.state.invoice("C100", "9001")["RECO"] == 9
    again = m3.add_receipt(batch=7000001, batch_type="ST", lines=[line])
    assert all("already done" in s for s in again["steps"])
    assert len(sim.state.receipts()) == 1


def test_a_lost_response_on_a_write_is_an_unknown_outcome(m3: InforM3, m3_sim: Served) -> None:
    sim = sim_of(m3_sim)
    sim.faults.add("lose_response", match="ARS040MI/AddBatchHead")
    with pytest.raises(OutcomeUnknown):
        m3.execute("receipts.head", {"PBID": 5, "BOPE": "ST"}, write=True)
    assert 5 in sim.state.batches  # it happened; only the answer was lost


def test_token_expiry_mid_run_and_429_storm_are_absorbed(m3: InforM3, m3_sim: Served) -> None:
    sim = sim_of(m3_sim)
    assert m3.execute("customers.get", {"CUNO": "C100"})
    sim.expire_tokens()  # the token dies on the server before its expiry time
    sim.faults.add("status", status=429, retry_after=1, count=3, match="CRS610MI")
    assert m3.execute("customers.get", {"CUNO": "C100"})[0]["CUNO"] == "C100"
    assert sim.token_requests == 2


def test_check_lists_what_the_tenant_exposes(m3: InforM3) -> None:
    result = m3.check()
    assert result.ok and "SANDBOX_TST" in result.message
    m3.connection.settings["programs"] = {"receipts.head": "ARS040MI/AddBatchHeadX"}
    result = m3.check()
    assert not result.ok and "ARS040MI/AddBatchHeadX is not exposed" in result.details


def test_a_refused_fee_in_one_request_is_reported_not_lost(m3: InforM3, m3_sim: Served) -> None:
    sim = sim_of(m3_sim)
    line = {"TRNO": 1, "CUNO": "C100", "CINO": "9001", "INYR": 2026, "PYAM": "1210.00"}
    fee = {"CHAM": "35.39", "CHRI": "NOPE", "CUCD": "EUR"}
    result = m3.add_receipt(batch=7000003, batch_type="ST", lines=[line], charges=[fee])
    # M3 ran the control after refusing the fee: the payment is posted, the fee is not.
    assert result["refused"] == ["AddBatchCharge: Charge code NOPE does not exist"]
    assert sim.state.batches[7000003]["status"] == "updated" and len(sim.state.receipts()) == 1


def test_with_two_requests_a_refused_fee_leaves_the_batch_uncontrolled(
    m3: InforM3, m3_sim: Served
) -> None:
    sim = sim_of(m3_sim)
    m3.connection.settings["receipt_requests"] = 2
    line = {"TRNO": 1, "CUNO": "C100", "CINO": "9001", "INYR": 2026, "PYAM": "1210.00"}
    fee = {"CHAM": "35.39", "CHRI": "NOPE", "CUCD": "EUR"}
    with pytest.raises(MIError, match="Charge code NOPE does not exist"):
        m3.add_receipt(batch=7000002, batch_type="ST", lines=[line], charges=[fee])
    assert sim.state.batches[7000002]["status"] == "entered"  # never controlled: nothing posted
    assert sim.state.receipts() == []


def test_a_large_ar_ledger_is_read_whole_past_the_grid_cap(m3: InforM3, m3_sim: Served) -> None:
    sim = sim_of(m3_sim)
    for n in range(1200):  # one customer with more entries than a grid returns
        sim.state.add_invoice("C100", f"A{n}", "10.00", "EUR", ivdt=f"202610{n // 50 + 1:02d}")
    sim.state.add_invoice("C200", "B1", "10.00", "GBP", ivdt="20261001")
    before = sim.api_requests
    entries = [e for chunk in m3.list_invoice_entries() for e in chunk]
    numbers = [e["CINO"] for e in entries if e["CINO"].startswith(("A", "B"))]
    assert len(numbers) == len(set(numbers)) == 1201  # nothing lost past the cap, no repeats
    assert sim.grid_cap == 1000 and sim.api_requests - before <= 6  # key ranges, bulk requests
    since = [e for chunk in m3.list_invoice_entries(since_date="20261020") for e in chunk]
    dates = {e["IVDT"] for e in since if e["CINO"].startswith("A")}
    assert dates == {"20261020", "20261021", "20261022", "20261023", "20261024"}
