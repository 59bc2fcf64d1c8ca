"""CloudSuite → Wise, end to end: suppliers become recipients (immutable: a bank change is a
delete and a new recipient), through the runner, both clients and both simulators over HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone

from audit.models import AuditRecord
from connections.models import Connection
from connections.sandbox.base import Served
from connections.sandbox.m3 import M3Simulator
from connections.sandbox.wise import WiseSimulator
from syncs.models import Integration, SyncRun
from syncs.runner import Runner

S = AuditRecord.Status
IBAN_1 = "DE89370400440532013000"
IBAN_2 = "NL91ABNA0417164300"


@pytest.fixture
def m3(m3_sim: Served) -> M3Simulator:
    sim: M3Simulator = m3_sim.app  # type: ignore[assignment]
    sim.state.put_account("2440", "Accounts payable")
    sim.state.put_account("1940", "Wise EUR balance")
    sim.state.put_supplier("S1", SUNM="Rösterei Nord GmbH", CUCD="EUR", SFI1=IBAN_1)
    sim.state.put_supplier(
        "S2", SUNM="Birch Supplies Ltd", CUCD="GBP", SFI3="40-47-84", SFI4="70872490"
    )
    sim.state.put_supplier("S3", SUNM="No Bank Ltd", CUCD="EUR")  # nothing to pay to: left out
    sim.state.put_supplier("S4", SUNM="Typo BV", CUCD="EUR", SFI1="NL91ABNA0417164301")
    return sim


@pytest.fixture
def wise(wise_sim: Served) -> WiseSimulator:
    return wise_sim.app  # type: ignore[return-value]


def make(flow: str, source: Connection, target: Connection, **settings: Any) -> Integration:
    integ = Integration(
        name=flow,
        slug=flow.replace(".", "-"),
        flow=flow,
        source=source,
        target=target,
        settings=settings,
    )
    integ.full_clean()
    integ.save()
    return integ


@pytest.fixture
def recipients(m3_connection: Connection, wise_connection: Connection) -> Integration:
    return make("m3_wise.recipients", m3_connection, wise_connection)


def run(integ: Integration) -> SyncRun:
    return Runner(Integration.objects.get(pk=integ.pk), trigger="manual").run()


def active(wise: WiseSimulator) -> dict[str, dict]:
    return {r["accountHolderName"]: r for r in wise.recipients.values() if r["active"]}


def test_suppliers_with_bank_details_become_recipients_once(
    recipients: Integration, m3: M3Simulator, wise: WiseSimulator
) -> None:
    first = run(recipients)
    assert (first.synced, first.flagged) == (2, 1)
    made = active(wise)
    assert made["Rösterei Nord GmbH"]["type"] == "iban"
    assert made["Rösterei Nord GmbH"]["details"] == {"legalType": "BUSINESS", "IBAN": IBAN_1}
    assert made["Birch Supplies Ltd"]["type"] == "sort_code"
    assert made["Birch Supplies Ltd"]["details"]["sortCode"] == "404784"
    flagged = first.records.get(status=S.FLAGGED)
    assert flagged.source_key == "S4/EUR" and "does not check out" in flagged.reason
    assert "No Bank Ltd" not in made

    m3.state.put_supplier("S2", PHNO="+44 1 234")  # changed, but not its bank details
    again = run(recipients)
    assert again.synced == 0 and len(active(wise)) == 2  # nothing sent again


def test_changed_bank_details_delete_the_old_recipient_and_make_a_new_one(
    recipients: Integration, m3: M3Simulator, wise: WiseSimulator
) -> None:
    run(recipients)
    old = active(wise)["Rösterei Nord GmbH"]["id"]
    m3.state.put_supplier("S1", SFI1=IBAN_2)
    changed = run(recipients)
    assert changed.synced == 2
    steps = [r.reason for r in changed.records.order_by("pk")]
    assert steps[0].startswith("Recipient") and "created" in steps[0]
    assert f"Old recipient {old} deleted" in steps[1]
    now = active(wise)["Rösterei Nord GmbH"]
    assert now["id"] != old and now["details"]["IBAN"] == IBAN_2
    assert wise.recipients[old]["active"] is False

    m3.state.put_supplier("S1", SFI1=IBAN_1)  # and back again: a third recipient, not the first
    back = run(recipients)
    assert back.synced == 2 and active(wise)["Rösterei Nord GmbH"]["details"]["IBAN"] == IBAN_1
    assert sum(1 for r in wise.recipients.values() if r["active"]) == 2


def test_the_old_recipient_stays_until_the_new_one_exists(
    recipients: Integration, m3: M3Simulator, wise: WiseSimulator
) -> None:
    run(recipients)
    old = active(wise)["Rösterei Nord GmbH"]["id"]
    m3.state.put_supplier("S1", SFI1=IBAN_2)
    wise.faults.add("status", status=400, match="POST /v1/accounts", count=5)
    refused = run(recipients)
    assert refused.failed == 2 and wise.recipients[old]["active"] is True
    wise.faults.clear()
    replayed = run(recipients)  # read again (the cursor held) and both steps done
    assert replayed.synced == 2 and wise.recipients[old]["active"] is False


def test_a_lost_answer_makes_no_second_recipient(
    recipients: Integration, m3: M3Simulator, wise: WiseSimulator
) -> None:
    wise.faults.add("lose_response", match="POST /v1/accounts", count=1)
    first = run(recipients)
    assert first.failed >= 1
    second = run(recipients)
    assert second.failed == 0
    assert sorted(active(wise)) == ["Birch Supplies Ltd", "Rösterei Nord GmbH"]
    assert len(wise.recipients) == 2


# -- quotes and payments ----------------------------------------------------------------------


def due(days: int) -> str:
    from datetime import date, timedelta

    return (date.today() + timedelta(days=days)).strftime("%Y%m%d")


@pytest.fixture
def invoices(m3: M3Simulator) -> M3Simulator:
    m3.state.add_supplier_invoice("S1", "R-100", "1250.40", "EUR", due=due(3))
    m3.state.add_supplier_invoice("S2", "B-7", "99.99", "GBP", due=due(5))
    m3.state.add_supplier_invoice("S1", "R-101", "10.00", "EUR", due=due(60))  # not this run
    m3.state.add_supplier_invoice("S1", "R-102", "20.00", "EUR", due=due(2), IVBL="1")  # stopped
    m3.state.add_supplier_invoice("S3", "N-1", "30.00", "EUR", due=due(1))  # no recipient
    return m3


@pytest.fixture
def quotes(m3_connection: Connection, wise_connection: Connection) -> Integration:
    return make("m3_wise.quotes", m3_connection, wise_connection)


def test_a_quote_for_each_open_invoice_due_in_the_window(
    recipients: Integration,
    quotes: Integration,
    invoices: M3Simulator,
    wise: WiseSimulator,
    admin_client: Any,
) -> None:
    run(recipients)
    first = run(quotes)
    assert (first.synced, first.flagged) == (2, 1)
    by_invoice = {r.source_key: r for r in first.records.all()}
    quoted = by_invoice["S1/R-100"]
    quote = wise.quotes[quoted.target_key]
    assert (quote["targetAmount"], quote["targetCurrency"], quote["sourceCurrency"]) == (
        1250.40,
        "EUR",
        "EUR",
    )
    assert quote["targetAccount"] == int(active(wise)["Rösterei Nord GmbH"]["id"])
    assert "Make the transfer from it in Wise" in quoted.reason
    assert quoted.response_summary["SINO"] == "R-100"
    assert "no Wise recipient" in by_invoice["S3/N-1"].reason
    assert not wise.transfers  # creating and funding a transfer stays with a person
    again = run(quotes)
    assert again.synced == 0 and len(wise.quotes) == 2  # quoted today already
    page = admin_client.get("/admin/audit/paymentquote/").content.decode()
    assert quoted.target_key.replace("-", "-<wbr>") in page  # breaks only after a hyphen
    assert "R-100" in page and "1,250.40 EUR" in page and "Rösterei Nord GmbH" in page
    assert "1250.4 EUR" not in page  # an amount keeps its currency's decimals
    due = quoted.response_summary["DUDT"]
    overdue = due < f"{timezone.localdate():%Y%m%d}"
    assert ('class="mlc-overdue"' in page) == overdue  # a due date passed is marked
    found = admin_client.get("/admin/audit/paymentquote/", {"q": "1250.40"}).content.decode()
    assert "R-100" in found


# -- issue 22: Wise's published contract ----------------------------------------------------------

USD_SUPPLIER = {
    "SUNM": "Hudson Tooling Inc",
    "CUCD": "USD",
    "CSCD": "US",
    "ECAR": "NY",
    "SFI2": "CHASUS33XXX",
    "SFI4": "8310946522",
}
ADDRESS = {"CFI2": "350 Fifth Avenue", "CFI1": "New York", "CFI4": "10118"}
ADDRESS_FIELDS = {
    "address.firstLine": "CFI2",
    "address.city": "CFI1",
    "address.postCode": "CFI4",
}


def test_a_usd_supplier_gets_the_fields_wises_form_asks_for(
    m3: M3Simulator, wise: WiseSimulator, m3_connection: Connection, wise_connection: Connection
) -> None:
    m3.state.put_supplier("S7", **USD_SUPPLIER)
    integ = make(
        "m3_wise.recipients", m3_connection, wise_connection, recipient_fields=ADDRESS_FIELDS
    )
    first = run(integ)
    item = first.records.get(source_key="S7/USD")
    assert item.status == S.FLAGGED
    assert (
        "Supplier S7 has no address line 1 (read from the supplier's CFI2), which Wise needs "
        "for USD recipients." in item.reason
    )
    assert "no city" in item.reason and "no post code" in item.reason
    assert not [r for r in wise.recipients.values() if r["currency"] == "USD"]

    m3.state.put_supplier("S7", **ADDRESS)
    second = run(integ)
    assert second.records.get(source_key="S7/USD").status == S.SYNCED
    made = [r for r in wise.recipients.values() if r["currency"] == "USD"]
    assert len(made) == 1 and made[0]["type"] == "swift_code"  # no routing number: SWIFT
    assert made[0]["details"]["swiftCode"] == "CHASUS33XXX"
    assert made[0]["details"]["address"] == {
        "country": "US",
        "state": "NY",  # sent with the country: Wise asks for it once the country is US
        "firstLine": "350 Fifth Avenue",
        "city": "New York",
        "postCode": "10118",
    }
    assert run(integ).synced == 0  # nothing sent again
    assert wise.violations == []


def test_a_state_wise_needs_and_cloudsuite_lacks_is_said_plainly(
    m3: M3Simulator, wise: WiseSimulator, m3_connection: Connection, wise_connection: Connection
) -> None:
    m3.state.put_supplier("S7", **{**USD_SUPPLIER, "ECAR": ""}, **ADDRESS)
    integ = make(
        "m3_wise.recipients", m3_connection, wise_connection, recipient_fields=ADDRESS_FIELDS
    )
    item = run(integ).records.get(source_key="S7/USD")
    assert item.status == S.FAILED
    assert item.reason == (
        "Wise refused the recipient: it needs the supplier's state (read from the supplier's "
        "ECAR) for USD recipients; set it in CloudSuite, then replay."
    )
    assert "HTTP" not in item.reason and "http://" not in item.reason


def test_each_due_invoice_one_quote_paid_from_the_balance(
    recipients: Integration,
    quotes: Integration,
    invoices: M3Simulator,
    wise: WiseSimulator,
    wise_connection: Connection,
) -> None:
    run(recipients)
    run(quotes)
    assert {q["preferredPayIn"] for q in wise.quotes.values()} == {"BALANCE"}
    wise_connection.settings = {**wise_connection.settings, "pay_in": "BANK_TRANSFER"}
    wise_connection.save()
    invoices.state.add_supplier_invoice("S1", "R-103", "5.00", "EUR", due=due(1))
    run(quotes)
    paid_by = {q["targetAmount"]: q["preferredPayIn"] for q in wise.quotes.values()}
    assert paid_by == {1250.4: "BALANCE", 99.99: "BALANCE", 5.0: "BANK_TRANSFER"}
    assert wise.violations == []


def test_a_lost_quote_answer_makes_no_second_quote_while_the_first_could_be_used(
    recipients: Integration, quotes: Integration, invoices: M3Simulator, wise: WiseSimulator
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from audit.models import PostingLedger

    run(recipients)
    wise.faults.add("lose_response", match="POST /v3/profiles", count=1)
    lost = run(quotes)
    assert lost.failed == 1 and len(wise.quotes) == 2  # Wise made it; the answer never came
    told = lost.records.get(status=S.FAILED).reason
    assert "cannot look a quote up" in told and "look in Wise" not in told
    waited = run(quotes)
    item = waited.records.get(status=S.FAILED)
    assert "no second quote is made" in item.reason and item.waiting
    assert len(wise.quotes) == 2
    entry = PostingLedger.objects.get(target="wise.quote", state=PostingLedger.State.PENDING)
    entry.attempted_at = timezone.now() - timedelta(minutes=40)  # its rate hold is long over
    entry.save()
    after = run(quotes)
    assert after.synced == 1 and len(wise.quotes) == 3
    assert run(quotes).synced == 0 and len(wise.quotes) == 3  # once
    assert wise.violations == []


@pytest.mark.parametrize("casing", ["documented", "request"])
def test_a_recipient_is_found_after_a_lost_answer_in_either_key_casing(
    recipients: Integration, m3: M3Simulator, wise: WiseSimulator, casing: str
) -> None:
    """Wise's v2 listing writes an IBAN as ``iban`` and may leave the BIC out; a server that
    echoes the request's ``IBAN``/``BIC`` must be matched too."""
    m3.state.put_supplier("S1", SFI2="COBADEFFXXX")  # an IBAN and a BIC
    if casing == "request":
        wise._v2 = lambda r: {  # type: ignore[method-assign]
            "id": r["id"],
            "name": {"fullName": r["accountHolderName"].upper()},
            "currency": r["currency"],
            "active": r["active"],
            "details": dict(r["details"]),
        }
    wise.faults.add("lose_response", match="POST /v1/accounts", count=2)
    run(recipients)
    again = run(recipients)
    assert again.failed == 0
    assert len(wise.recipients) == 2 and wise.violations == []


def test_recipients_match_by_a_normalised_comparison() -> None:
    from syncs.flows.m3_wise_recipients import same_recipient

    wanted = {
        "accountHolderName": "Birch Supplies Ltd",
        "details": {"legalType": "BUSINESS", "IBAN": "GB33BUKB20201555555555", "BIC": "BUKBGB22"},
    }
    v2 = {
        "name": {"fullName": "birch  supplies ltd"},
        "active": True,
        "details": {"iban": "GB33 BUKB 2020 1555 5555 55"},  # spaced, no BIC
    }
    assert same_recipient(wanted, v2)
    assert same_recipient(
        wanted, {**v2, "details": {"IBAN": "gb33bukb20201555555555", "BIC": "BUKBGB22"}}
    )
    assert not same_recipient(wanted, {**v2, "details": {"iban": "GB33BUKB20201555555556"}})
    assert not same_recipient(
        wanted, {**v2, "details": {"iban": "GB33BUKB20201555555555", "bic": "OTHERGB2"}}
    )
    assert not same_recipient(wanted, {**v2, "details": {}})  # nothing to compare: not the same
    assert not same_recipient(wanted, {**v2, "active": False})
    sort = {
        "accountHolderName": "B Ltd",
        "details": {"sortCode": "404784", "accountNumber": "70872490"},
    }
    shown = {
        "name": {"fullName": "B Ltd"},
        "details": {"sortcode": "40-47-84", "accountNumber": "70872490"},
    }
    assert same_recipient(sort, shown)


def test_a_currency_wise_offers_no_recipients_in_is_said_plainly(
    recipients: Integration, m3: M3Simulator, wise: WiseSimulator
) -> None:
    m3.state.put_supplier("S9", SUNM="Douala Bois SARL", CUCD="XAF", SFI1=IBAN_1)
    item = run(recipients).records.get(source_key="S9/XAF")
    assert item.status == S.FLAGGED
    assert item.reason.startswith("Wise offers no recipients for payments from EUR to XAF: ")
    assert "http" not in item.reason.lower() and "422" not in item.reason
    assert not [r for r in wise.recipients.values() if r["currency"] == "XAF"]


def test_a_tenant_whose_fields_hold_only_their_catalogue_length_pays_no_cut_account(
    recipients: Integration, m3: M3Simulator, wise: WiseSimulator
) -> None:
    """No source says where a tenant keeps supplier bank details; the catalogue's SFI1 holds 10
    characters, SFI3 3 and SFI4 5. Read that strictly, the default fields come back cut: every
    such supplier is flagged for its bank details, and no recipient is made from a cut one."""
    m3.cut_to_length = True
    done = run(recipients)
    assert done.synced == 0 and not wise.recipients
    reasons = {r.source_key: r.reason for r in done.records.filter(status=S.FLAGGED)}
    assert "does not check out" in reasons["S1/EUR"]  # the IBAN, cut to 10 characters
    assert "S2/GBP" in reasons  # sort code and account number cut: not Wise's form
    assert wise.violations == []
