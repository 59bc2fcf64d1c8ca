"""Plain language and labelled payloads: what a finance user reads instead of HTTP and JSON."""

from __future__ import annotations

from decimal import Decimal

from connections.providers import plain
from connections.providers.errors import (
    AuthFailed,
    OutcomeUnknown,
    RateLimited,
    Rejected,
    Transient,
)
from syncs import display


def test_a_refusal_says_who_refused_what_in_the_remote_s_own_words() -> None:
    exc = Rejected(
        "GET http://m3/ARS040MI/AddBatchLine?CONO=100 answered 400: Invoice 70023 does not exist",
        status=400,
        remote_message="Invoice 70023 does not exist",
    )
    told = plain.failure(exc, system="CloudSuite", thing="the receipt", detail=exc.message)
    assert told.reason == "CloudSuite refused the receipt: Invoice 70023 does not exist."
    assert "ARS040MI" in told.detail and "http" not in told.reason


def test_temporary_failures_say_they_will_be_retried_and_nothing_technical() -> None:
    for exc in (
        Transient("POST http://x failed: ConnectionError: HTTPConnectionPool(...)"),
        RateLimited("429", status=429),
    ):
        told = plain.failure(exc, system="Stripe", thing="the invoice", detail=exc.message)
        assert "again by itself" in told.reason and "HTTPConnectionPool" not in told.reason
    lost = plain.failure(
        OutcomeUnknown("read timeout"), system="CloudSuite", thing="the receipt", detail=""
    )
    assert "cannot be posted twice" in lost.reason
    auth = plain.failure(AuthFailed("401"), system="Wise", thing="the quote", detail="")
    assert "credentials" in auth.reason and auth.reason.startswith("Wise refused")


def test_stripe_amounts_read_in_major_units_with_their_currency() -> None:
    rows = dict(display.fields({"amount": 50000, "currency": "sek", "fee": 1480}))
    assert rows["Amount"] == "500.00 SEK" and rows["Fee"] == "14.80 SEK"
    assert dict(display.fields({"amount": 5000, "currency": "jpy"}))["Amount"] == "5,000 JPY"


def test_m3_field_codes_read_as_names_and_dates_as_dates() -> None:
    rows = dict(display.fields({"lines": [{"CINO": "70023", "IVDT": "20261101", "PYAM": "1"}]}))
    assert rows["Lines \u203a 1 \u203a Invoice (CINO)"] == "70023"
    assert rows["Lines \u203a 1 \u203a Invoice date (IVDT)"] == "2026-11-01"


def test_a_collection_has_customer_fee_net_and_gl() -> None:
    sent = {
        "lines": [
            {
                "CUNO": "C100",
                "CINO": "9001",
                "PYAM": "1210.00",
                "CUCD": "EUR",
                "AIT1": "1930",
                "AIT2": "100",
            }
        ],
        "charges": [{"CHAM": "35.39", "CHRI": "FEE", "CUCD": "EUR"}],
    }
    row = display.collection(sent, {"kind": "payment"})
    assert (row["customer"], row["invoice"], row["gl"]) == ("C100", "9001", "1930;100")
    assert (row["amount"], row["fee"], row["net"]) == (
        Decimal("1210.00"),
        Decimal("35.39"),
        Decimal("1174.61"),
    )


def test_ages_read_in_the_largest_sensible_unit() -> None:
    assert [display.age(s) for s in (5, 600, 7200, 86400 * 3)] == [
        "5 s",
        "10 min",
        "2 h",
        "3 days",
    ]


def test_the_flows_own_keys_read_as_cloudsuite_fields() -> None:
    rows = dict(display.fields({"m3": {"m3_invoice": "9002"}, "sourceCurrency": "EUR"}))
    assert rows["CloudSuite invoice"] == "9002"  # not under "CloudSuite" again
    assert rows["Source currency"] == "EUR"


def test_empty_fields_are_left_out_currencies_read_as_codes_and_times_with_their_zone() -> None:
    rows = dict(
        display.fields(
            {
                "currency": "gbp",
                "lines": [{"AIT1": "1930", "AIT2": "", "AIT3": None}],
                "created_at": "2026-12-03T04:05:06Z",
                "held": "2026-12-03T05:05:06+01:00",
                "note": "",
                "parts": [],
            }
        )
    )
    assert rows == {
        "Currency": "GBP",
        "Lines \u203a 1 \u203a GL account (AIT1)": "1930",
        "Created at": "2026-12-03 04:05:06 UTC",
        "Held": "2026-12-03 05:05:06 UTC+0100",
    }


def test_amounts_read_with_their_currency_and_ids_as_they_are() -> None:
    rows = dict(
        display.fields(
            {"currency": "eur", "total": 50000, "m3": {"m3_amount": "300.00"}, "fee": 900}
        )
    )
    assert rows == {
        "Currency": "EUR",
        "Total": "500.00 EUR",  # Stripe's minor units
        "CloudSuite amount": "300.00 EUR",  # CloudSuite's major units
        "Fee": "9.00 EUR",
    }
    judged = dict(display.fields({"open_amount": {"pi_3QxA1b2C3d": "12.5"}}, currency="GBP"))
    assert judged == {"Open amount \u203a pi_3QxA1b2C3d": "12.50 GBP"}


def test_lines_sent_that_are_no_posting_read_as_a_table_with_their_currencies() -> None:
    stripe_invoice = {
        "invoice": {"customer": "cus_1"},
        "lines": [
            {"amount": 100000, "currency": "eur", "description": "Invoice 9001"},
            {"amount": 21000, "currency": "eur", "description": "VAT"},
        ],
    }
    assert display.line_table(stripe_invoice) == (
        ["Amount", "Description"],
        [["1,000.00 EUR", "Invoice 9001"], ["210.00 EUR", "VAT"]],
    )
    purchase = {"lines": [{"SKU": "A1", "Price": 10.5, "Tax": 4.2, "Total": 21.0}]}
    assert display.line_table(purchase, "EUR") == (
        ["SKU", "Price", "Tax", "Total"],
        [["A1", "10.50 EUR", "4.20 EUR", "21.00 EUR"]],
    )
    journal = {"lines": [{"AIT1": "1930", "CUAM": "5.00", "CUCD": "EUR"}]}
    assert display.line_table(journal) == ([], [])  # debit and credit show it instead
