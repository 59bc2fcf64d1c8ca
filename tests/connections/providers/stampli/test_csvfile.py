"""Stampli CSV exports read by a template: what real exports come with, bad rows reported by
line without blocking the rest, files that are not CSV refused whole — and fuzzed."""

from __future__ import annotations

import csv
import io
import os
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connections.providers.stampli.csvfile import (
    DEFAULT_TEMPLATE,
    FIELDS,
    NotCsv,
    Reader,
    template_with,
)

EXAMPLES = int(os.environ.get("HYPOTHESIS_EXAMPLES", "200"))
HEADER = (
    "Invoice ID,Vendor ID,Vendor Name,Invoice Number,Invoice Date,Due Date,Currency,Total Amount"
)


def invoices(content: bytes, **template: object):  # type: ignore[no-untyped-def]
    return Reader(template_with(template), "invoices").parse(content)


def test_bom_crlf_quotes_thousands_and_trailing_blank_lines() -> None:
    content = (
        "\ufeff" + HEADER + ",Status\r\n"
        'ST-1,V-9,"Acme, Inc.",A-100,2026-11-01,2026-12-01,USD,"1,234.50",Approved\r\n'
        'ST-2,V-9,"Line\r\nbreak Ltd",A-101,2026-11-02,,EUR,99.00,Approved\r\n'
        "\r\n\r\n"
    ).encode()
    parsed = invoices(content)
    assert parsed.errors == []
    first, second = parsed.rows
    assert first.line == 2 and first.values["vendor_name"] == "Acme, Inc."
    assert first.values["total"] == Decimal("1234.50") and first.values["due_date"] == "2026-12-01"
    assert second.line == 3 and second.values["due_date"] is None
    assert second.values["vendor_name"] == "Line\r\nbreak Ltd"


def test_columns_in_any_order_and_extra_columns() -> None:
    content = (
        b"Currency,Total Amount,Extra,Invoice Number,Vendor Name,Vendor ID,Invoice ID,"
        b"Invoice Date\n"
        b"SEK,10.00,x,N-1,Nord AB,V1,S1,2026-11-01\n"
    )
    (row,) = invoices(content).rows
    assert row.values["invoice_number"] == "N-1" and row.values["currency"] == "SEK"


def test_a_bad_row_is_reported_by_line_and_the_rest_is_read() -> None:
    content = (
        HEADER + "\n"
        "S1,V1,Nord AB,N-1,2026-11-01,,SEK,10.00\n"
        "S2,V1,Nord AB,N-2,01/11/2026,,SEK,10.00\n"  # not the template's date format
        "S3,V1,Nord AB,N-3,2026-11-03,,SEK,1.2.3\n"
        "S4,V1,,N-4,2026-11-04,,SEK,10.00\n"  # a required value missing
        "S5,V1,Nord AB\n"  # too few fields
        'S6,V1,Nord AB,N-6,2026-11-06,,SEK,"12,34"\n'  # thousands in the wrong places
        "S7,V1,Nord AB,N-7,2026-11-07,,SEK,7.00\n"
    ).encode()
    parsed = invoices(content)
    assert [r.values["invoice_id"] for r in parsed.rows] == ["S1", "S7"]
    assert [e.line for e in parsed.errors] == [3, 4, 5, 6, 7]
    reasons = " | ".join(e.reason for e in parsed.errors)
    assert "“Invoice Date”" in reasons and "“Vendor Name” is empty" in reasons
    assert "wrong places" in reasons


def test_a_european_layout() -> None:
    content = (
        HEADER.replace(",", ";") + "\n" + "S1;V1;Nord AB;N-1;01.11.2026;;EUR;1.234,56\n"
    ).encode("latin-1")
    parsed = invoices(
        content,
        delimiter=";",
        decimal=",",
        thousands=".",
        date_format="%d.%m.%Y",
        encoding="latin-1",
    )
    assert parsed.rows[0].values["total"] == Decimal("1234.56")
    assert parsed.rows[0].values["invoice_date"] == "2026-11-01"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00", "binary"),
        (b"", "empty"),
        (b"\xff\xfe\xfa not utf-8", "encoding"),
        (b"just,some,columns\n1,2,3\n", "lacks"),
        (b'{"json": true}\n', "lacks"),
    ],
)
def test_a_file_that_is_not_an_export_is_refused_whole(content: bytes, reason: str) -> None:
    with pytest.raises(NotCsv, match=reason):
        invoices(content)


HEAD = b"Invoice ID,Vendor ID,Vendor Name,Invoice Number,Invoice Date,Currency,Total Amount\n"


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (
            HEAD + b'ST-1,V1,"Acme\n',
            "ends inside a quoted value (the record that starts on line 2)",
        ),
        (HEAD + b"ST-1,V1,Acme,INV-1\n", "its last row (line 2) has 4 of the header's 7 fields"),
        (HEAD + b"ST-1,V1,Acme,INV-1,2026-11-01,EUR,10.00", "does not end with a line break"),
        (HEAD + "ST-1,V1,Ac\u00e9".encode()[:-1], "ends in the middle of a character"),
        (b"Invoice ID,Vendor", "not even its header row"),
        (b'{"json": true}', "not even its header row"),  # one line, no break: may be cut
    ],
)
def test_a_file_whose_last_record_is_cut_is_incomplete_whatever_its_age(
    content: bytes, why: str
) -> None:
    parsed = invoices(content)
    assert why in parsed.incomplete


def test_a_whole_file_is_not_incomplete_and_quotes_inside_values_are_literal() -> None:
    whole = (
        HEAD
        + b'ST-1,V1,"Acme ""Big"" Co",INV-1,2026-11-01,EUR,10.00\r\n'
        + b'ST-2,V1,5" pipe,I-2,2026-11-01,EUR,1\r\n'
    )
    parsed = invoices(whole)
    assert parsed.incomplete == "" and len(parsed.rows) == 2
    no_break = template_with({"ends_with_newline": False})
    assert Reader(no_break, "invoices").parse(whole.rstrip()).incomplete == ""


def test_date_formats_belong_to_each_kind_and_may_be_several() -> None:
    template = template_with(
        {
            "files": {"invoices": {"date_formats": ["%m/%d/%Y", "%Y-%m-%d"]}},
            "date_format": "%d.%m.%Y",
        }
    )
    rows = (
        HEAD
        + b"A,V1,Acme,I-1,11/28/2026,EUR,1\nB,V1,Acme,I-2,2026-11-29,EUR,1\n"
        + b"C,V1,Acme,I-3,28.11.2026,EUR,1\n"
    )
    parsed = Reader(template, "invoices").parse(rows)
    assert [r.values["invoice_date"] for r in parsed.rows] == ["2026-11-28", "2026-11-29"]
    assert "not a date like %m/%d/%Y or %Y-%m-%d" in parsed.errors[0].reason
    payments = Reader(template, "payments")
    assert payments.date_formats == ["%d.%m.%Y"]  # the template-wide format for the others


def test_the_combined_layout_reads_line_columns_on_the_invoice_row() -> None:
    template = template_with({"layout": "combined"})
    head = HEAD.rstrip(b"\n") + b",Amount,GL Account\n"
    parsed = Reader(template, "invoices").parse(head + b"A,V1,Acme,I-1,2026-11-28,EUR,30,10,6110\n")
    assert parsed.rows[0].values["amount"] == Decimal("10")
    assert parsed.rows[0].values["gl_code"] == "6110"


def test_vendors_matched_by_name_need_no_vendor_id_column() -> None:
    template = template_with({"vendor_match": "name"})
    head = b"Invoice ID,Vendor Name,Invoice Number,Invoice Date,Currency,Total Amount\n"
    parsed = Reader(template, "invoices").parse(head + b"A,Acme GmbH,I-1,2026-11-28,EUR,30\n")
    assert parsed.rows[0].values["vendor_name"] == "Acme GmbH"
    assert parsed.rows[0].values["vendor_id"] is None
    with pytest.raises(NotCsv, match="Vendor Name"):
        Reader(template, "invoices").parse(
            head.replace(b"Vendor Name,", b"") + b"A,I,2026-11-28,EUR,1\n"
        )


# -- fuzzing ----------------------------------------------------------------------------------

KINDS = list(FIELDS)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(KINDS), content=st.binary(max_size=2000))
def test_random_bytes_never_crash_the_reader(kind: str, content: bytes) -> None:
    try:
        parsed = Reader(template_with({}), kind).parse(content)
    except NotCsv:
        return
    for row in parsed.rows:  # anything read is read whole
        assert_whole(kind, row.values)


def assert_whole(kind: str, values: dict) -> None:
    for name, kind_of in FIELDS[kind].items():
        value = values[name]
        if value is None:
            assert kind_of.endswith("?"), name
        elif kind_of.startswith("decimal"):
            assert isinstance(value, Decimal) and value.is_finite()
        elif kind_of.startswith("date"):
            assert len(value) == 10 and value[4] == "-"
        else:
            assert isinstance(value, str) and value.strip() == value and value


cell = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12),
    st.sampled_from(["", " ", "1,234.50", "12.00", "-3", "2026-11-30", "30/11/2026", "x\ny"]),
)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(KINDS),
    rows=st.lists(st.lists(cell, min_size=0, max_size=14), max_size=12),
    blank_tail=st.integers(0, 3),
    crlf=st.booleans(),
    quote_all=st.booleans(),
)
def test_random_csv_rows_are_read_whole_or_reported(
    kind: str, rows: list[list[str]], blank_tail: int, crlf: bool, quote_all: bool
) -> None:
    columns = DEFAULT_TEMPLATE["files"][kind]["columns"]
    out = io.StringIO()
    # A line break inside a field must be quoted (any CSV reader splits a bare one).
    breaks = any("\r" in c or "\n" in c for r in rows for c in r)
    writer = csv.writer(
        out,
        lineterminator="\r\n" if crlf else "\n",
        quoting=csv.QUOTE_ALL if quote_all or breaks else csv.QUOTE_MINIMAL,
    )
    writer.writerow(list(columns.values()))
    data_rows = [r for r in rows if any(c.strip() for c in r)]
    for row in rows:
        writer.writerow(row)
    out.write(("\r\n" if crlf else "\n") * blank_tail)
    parsed = Reader(template_with({}), kind).parse(out.getvalue().encode())
    assert len(parsed.rows) + len(parsed.errors) == len(data_rows)
    for row in parsed.rows:
        assert_whole(kind, row.values)
    lines = [r.line for r in parsed.rows] + [e.line for e in parsed.errors]
    assert len(set(lines)) == len(lines)  # every row once, by its own line
