"""Stampli → CloudSuite AP over a real SFTP server (asyncssh) and the M3 simulator: approved
invoices posted once in bulk, unmapped vendors and GL codes flagged then replayed, duplicates
across files, re-exports with other amounts, half-written files, malformed rows, restarts, and
M3's own refusals."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from audit.models import NEEDS_REVIEW, AuditRecord
from connections.models import Connection
from connections.sandbox.base import Served
from connections.sandbox.m3 import M3Simulator
from connections.sandbox.sftp import SftpSandbox
from syncs import display
from syncs.models import FieldMapping, Integration, ProcessedFile, SyncRun
from syncs.runner import Runner
from syncs.services import records_replay
from tests.sandbox_fixtures import stampli_connection

S = AuditRecord.Status
HEAD = (
    "Invoice ID,Vendor ID,Vendor Name,Invoice Number,Invoice Date,Due Date,Currency,"
    "Total Amount,Tax Amount,Status\r\n"
)
LINES_HEAD = "Invoice ID,Line Number,Description,Amount,GL Account\r\n"


@pytest.fixture
def m3(m3_sim: Served) -> M3Simulator:
    sim: M3Simulator = m3_sim.app  # type: ignore[assignment]
    sim.state.put_supplier("S100", SUNM="Nord Kontor AB", CUCD="SEK")
    sim.state.put_supplier("S200", SUNM="Atelier Lumière SARL", CUCD="EUR", REGR="IT")
    sim.state.ap_rules["IT"] = "6540"  # M3 codes this supplier's invoices to IT services
    for account, name in (("6110", "Office supplies"), ("6540", "IT services")):
        sim.state.put_account(account, name)
    sim.state.ap_default_account = "6110"
    return sim


def drop(sftp: SftpSandbox, name: str, text: str, *, age: float = 3600) -> Path:
    path = sftp.root / "outbound" / name
    path.write_text(text, encoding="utf-8")
    moment = time.time() - age
    os.utime(path, (moment, moment))
    return path


@pytest.fixture
def flow(sftp: SftpSandbox, m3_connection: Connection, m3: M3Simulator) -> Integration:
    stampli = stampli_connection(sftp, settle_seconds=60)
    integ = Integration(
        name="Stampli invoices",
        slug="stampli-invoices",
        flow="stampli_m3.invoices",
        source=stampli,
        target=m3_connection,
    )
    integ.full_clean()
    integ.save()
    for code, account in (("6000", "6110"), ("6500", "6540")):
        FieldMapping.objects.create(
            integration=integ, kind="gl_account", source_value=code, target_value=account
        )
    FieldMapping.objects.create(
        integration=integ, kind="vendor", source_value="V-LUM", target_value="S200"
    )
    return integ


def run(integ: Integration) -> SyncRun:
    return Runner(Integration.objects.get(pk=integ.pk), trigger="schedule").run()


def posted(m3: M3Simulator) -> list[tuple[str, str, str]]:
    return [(i["SUNO"], i["SINO"], str(i["CUAM"])) for i in m3.state.ap_invoices()]


def test_approved_invoices_land_in_cloudsuite_once(
    flow: Integration, sftp: SftpSandbox, m3: M3Simulator
) -> None:
    drop(
        sftp,
        "invoice_lines_1.csv",
        LINES_HEAD + 'ST-1,1,Paper,1000.00,6000\r\nST-2,1,Hosting,"1,200.00",6500\r\n',
    )
    drop(
        sftp,
        "invoices_1.csv",
        "\ufeff" + HEAD + "ST-1,V-NORD,Nord Kontor AB,NK-1,2026-11-02,2026-12-02,SEK,1250.00,"
        '250.00,Approved\r\nST-2,V-LUM,"Lumière, Atelier",AL-9,2026-11-03,,EUR,"1,200.00",,'
        "Approved\r\n\r\n",
    )
    before = m3.api_requests
    first = run(flow)
    assert (first.synced, first.flagged, first.failed) == (2, 0, 0), list(
        first.records.values_list("reason", flat=True)
    )
    assert sorted(posted(m3)) == [("S100", "NK-1", "1250.00"), ("S200", "AL-9", "1200.00")]
    ap_requests = m3.requests_by_program.get("APS450MI", 0) + m3.requests_by_program.get(
        "APS455MI", 0
    )
    assert ap_requests <= 6 and m3.api_requests - before < 15  # bulk, not one call per row
    assert ProcessedFile.objects.filter(integration=flow, name="invoices_1.csv").exists()
    sftp_used = Connection.objects.get(pk=flow.source_id)  # status from use, over SFTP too
    assert sftp_used.status == Connection.Status.OK and sftp_used.last_used_at is not None
    # …and each reads as the supplier invoice it posted: costs and VAT debited, supplier credited
    nord = first.records.get(source_key="V-NORD/NK-1")
    lines = display.entries(nord.sent_payload, nord.looked_up)
    assert [(e.text, e.debit, e.credit) for e in lines] == [
        ("Paper", Decimal("1000.00"), None),
        ("VAT", Decimal("250.00"), None),
        ("Supplier S100, invoice NK-1", None, Decimal("1250.00")),
    ]
    assert display.entry_totals(lines) == [("SEK", "1,250.00 SEK", "1,250.00 SEK")]
    again = run(flow)  # a restart or the next poll: the file is known, nothing is read again
    assert again.done == 0 and len(posted(m3)) == 2
    Connection.objects.filter(pk=flow.source_id).update(
        settings={**flow.source.settings, "archive_files": True}
    )
    drop(sftp, "invoice_lines_1b.csv", LINES_HEAD + "ST-3,1,Toner,10.00,6000\r\n")
    drop(
        sftp,
        "invoices_1b.csv",
        HEAD + "ST-3,V-NORD,Nord Kontor AB,NK-2,2026-11-04,,SEK,10.00,,Approved\r\n",
    )
    assert run(flow).synced == 1
    assert (sftp.root / "archive" / "invoices_1b.csv").exists()  # archived once processed
    assert not (sftp.root / "outbound" / "invoices_1b.csv").exists()


def test_an_unmapped_vendor_is_flagged_then_replayed_once_mapped(
    flow: Integration, sftp: SftpSandbox, m3: M3Simulator
) -> None:
    drop(sftp, "invoice_lines_2.csv", LINES_HEAD + "ST-5,1,Chairs,80.00,6000\r\n")
    drop(
        sftp,
        "invoices_2.csv",
        HEAD + "ST-5,V-NEW,Nord Kontor,NK-77,2026-11-05,,SEK,80.00,,Approved\r\n",
    )
    flagged = run(flow).records.exclude(status=S.SKIPPED).get()
    assert flagged.status == S.FLAGGED and "V-NEW" in flagged.reason
    assert "closest name: S100 Nord Kontor AB" in flagged.reason and posted(m3) == []
    FieldMapping.objects.create(
        integration=flow, kind="vendor", source_value="V-NEW", target_value="S100"
    )
    (replayed,) = records_replay(record_ids=[flagged.pk])
    assert replayed.synced == 1 and posted(m3) == [("S100", "NK-77", "80.00")]


def test_an_unmapped_gl_code_is_flagged_and_nothing_posted(
    flow: Integration, sftp: SftpSandbox, m3: M3Simulator
) -> None:
    drop(sftp, "invoice_lines_3.csv", LINES_HEAD + "ST-6,1,Travel,50.00,7300\r\n")
    drop(
        sftp,
        "invoices_3.csv",
        HEAD + "ST-6,V-NORD,Nord Kontor AB,NK-80,2026-11-06,,SEK,50.00,,Approved\r\n",
    )
    flagged = run(flow).records.exclude(status=S.SKIPPED).get()
    assert flagged.status == S.FLAGGED and "GL code 7300" in flagged.reason
    assert posted(m3) == []


def test_a_duplicate_across_files_and_a_changed_re_export(
    flow: Integration, sftp: SftpSandbox, m3: M3Simulator
) -> None:
    drop(sftp, "invoice_lines_4a.csv", LINES_HEAD + "ST-7,1,Paper,100.00,6000\r\n")
    row = "ST-7,V-NORD,Nord Kontor AB,NK-90,2026-11-07,,SEK,{},,Approved\r\n"
    drop(sftp, "invoices_4a.csv", HEAD + row.format("100.00"))
    assert run(flow).synced == 1
    drop(sftp, "invoice_lines_4b.csv", LINES_HEAD + "ST-7,1,Paper,100.00,6000\r\n")
    drop(sftp, "invoices_4b.csv", HEAD + row.format("100.00"))  # the same, exported again
    same = run(flow)
    assert same.synced == 0 and same.flagged == 0 and len(posted(m3)) == 1
    drop(sftp, "invoice_lines_4c.csv", LINES_HEAD + "ST-7b,1,Paper,120.00,6000\r\n")
    drop(
        sftp,
        "invoices_4c.csv",
        HEAD + row.replace("ST-7", "ST-7b").format("120.00"),
    )
    changed = run(flow).records.get(status=S.FLAGGED)
    assert "re-exported with other amounts" in changed.reason and "100.00 SEK" in changed.reason
    assert posted(m3) == [("S100", "NK-90", "100.00")]


def test_a_half_written_file_waits_for_the_next_poll(
    flow: Integration, sftp: SftpSandbox, m3: M3Simulator
) -> None:
    drop(sftp, "invoice_lines_5.csv", LINES_HEAD + "ST-8,1,Paper,10.00,6000\r\n")
    path = drop(sftp, "invoices_5.csv", HEAD + "ST-8,V-NORD,Nord", age=0)  # being written
    assert run(flow).done == 0
    path.write_text(HEAD + "ST-8,V-NORD,Nord Kontor AB,NK-95,2026-11-08,,SEK,10.00,,Approved\r\n")
    (sftp.root / "outbound" / "invoices_5.csv.done").write_text("")  # Stampli marks it done
    assert run(flow).synced == 1


def test_malformed_rows_are_reported_and_the_rest_posted(
    flow: Integration, sftp: SftpSandbox, m3: M3Simulator
) -> None:
    drop(
        sftp,
        "invoice_lines_6.csv",
        LINES_HEAD + "ST-9,1,Paper,10.00,6000\r\nST-10,1,Pens,5.00,6000\r\n",
    )
    drop(
        sftp,
        "invoices_6.csv",
        HEAD + "ST-9,V-NORD,Nord Kontor AB,NK-96,2026-11-09,,SEK,10.00,,Approved\r\n"
        "ST-X,V-NORD,Nord Kontor AB,NK-97,not a date,,SEK,10.00,,Approved\r\n"
        "ST-10,V-NORD,Nord Kontor AB,NK-98,2026-11-09,,SEK,5.0.0,,Approved\r\n",
    )
    done = run(flow)
    assert (done.synced, done.flagged) == (1, 2)
    reasons = sorted(done.records.filter(status=S.FLAGGED).values_list("reason", flat=True))
    assert "line 3" in reasons[0].lower() and "line 4" in reasons[1].lower()
    assert posted(m3) == [("S100", "NK-96", "10.00")]


def test_a_file_that_is_not_an_export_fails_alone(
    flow: Integration, sftp: SftpSandbox, m3: M3Simulator
) -> None:
    (sftp.root / "outbound" / "invoices_7.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    os.utime(sftp.root / "outbound" / "invoices_7.csv", (1, 1))
    record = run(flow).records.exclude(status=S.SKIPPED).get()
    assert record.status == S.FLAGGED and "binary" in record.reason
    assert (sftp.root / "outbound" / "invoices_7.csv").exists()  # never lost


def test_m3_refusing_a_line_fails_the_record_with_its_message(
    flow: Integration, sftp: SftpSandbox, m3: M3Simulator
) -> None:
    drop(sftp, "invoice_lines_8.csv", LINES_HEAD + "ST-11,1,REFUSE me,10.00,6000\r\n")
    drop(
        sftp,
        "invoices_8.csv",
        HEAD + "ST-11,V-NORD,Nord Kontor AB,NK-99,2026-11-10,,SEK,10.00,,Approved\r\n",
    )
    failed = run(flow).records.exclude(status=S.SKIPPED).get()
    assert failed.status == S.FAILED and "Service code is not valid" in failed.reason
    assert posted(m3) == []


def test_coding_that_differs_from_the_mapping_is_flagged_after_posting(
    flow: Integration, sftp: SftpSandbox, m3: M3Simulator
) -> None:
    drop(sftp, "invoice_lines_9.csv", LINES_HEAD + "ST-12,1,Hosting,40.00,6500\r\n")
    drop(
        sftp,
        "invoices_9.csv",
        HEAD + "ST-12,V-NORD,Nord Kontor AB,NK-100,2026-11-11,,SEK,40.00,,Approved\r\n",
    )
    record = run(flow).records.exclude(status=S.SKIPPED).get()
    assert posted(m3) == [("S100", "NK-100", "40.00")]  # posted, and put in front of a person
    assert record.status == S.FLAGGED and "6540 expected, M3 posted to" in record.reason
    assert "6110" in record.reason


PAY_HEAD = "Payment ID,Vendor ID,Invoice Number,Payment Date,Amount,Currency,Payment Method\r\n"


@pytest.fixture
def payments(flow: Integration) -> Integration:
    integ = Integration(
        name="Stampli payments",
        slug="stampli-payments",
        flow="stampli_m3.payments",
        source=flow.source,
        target=flow.target,
    )
    integ.full_clean()
    integ.save()
    for source, account in (("stampli_ap:SEK", "2440"), ("stampli_bank:SEK", "1930")):
        FieldMapping.objects.create(
            integration=integ, kind="gl_account", source_value=source, target_value=account
        )
    FieldMapping.objects.create(
        integration=integ, kind="vendor", source_value="V-NORD", target_value="S100"
    )
    return integ


def test_payments_are_matched_to_their_cloudsuite_invoice_and_recorded_once(
    payments: Integration, sftp: SftpSandbox, m3: M3Simulator
) -> None:
    m3.state.put_account("2440", "Accounts payable")
    m3.state.put_account("1930", "Bank SEK")
    m3.state.add_supplier_invoice("S100", "NK-1", "1250.00", "SEK", due="20261202")
    drop(
        sftp,
        "payments_1.csv",
        PAY_HEAD + 'P-1,V-NORD,NK-1,2026-11-20,"1,250.00",SEK,ACH\r\n'
        "P-2,V-NORD,NK-404,2026-11-20,10.00,SEK,ACH\r\n"  # CloudSuite has no such invoice
        "P-3,V-NORD,NK-1,2026-11-20,9999.00,SEK,ACH\r\n"  # more than the invoice
        "P-4,V-NORD,NK-1,2026-11-20,10.00,EUR,ACH\r\n",  # another currency
    )
    done = run(payments)
    assert (done.synced, done.flagged, done.failed) == (1, 2, 1)  # P-2 waits for its invoice
    debit, credit = m3.state.journal_lines()
    assert (debit["AIT1"], str(debit["CUAM"]), debit["VTXT"]) == (
        "2440",
        "1250.00",
        "Stampli P-1 S100 NK-1",  # a supplier invoice number is unique only per supplier
    )
    assert (debit["SUNO"], debit["SINO"], credit["SUNO"]) == ("S100", "NK-1", "S100")
    assert (credit["AIT1"], str(credit["CUAM"])) == ("1930", "-1250.00")
    reasons = " | ".join(done.records.filter(status=S.FLAGGED).values_list("reason", flat=True))
    assert "not a payment of an invoice" in reasons and "is in EUR, the invoice in SEK" in reasons
    waiting = done.records.get(status=S.FAILED)
    assert (
        waiting.waiting
        and waiting.retryable
        and "no such invoice in CloudSuite yet" in (waiting.reason)
    )
    assert not AuditRecord.objects.filter(NEEDS_REVIEW, source_key=waiting.source_key).exists()
    again = run(payments)  # the file is read again while a payment waits; nothing doubles
    assert len(m3.state.journal_lines()) == 2 and again.synced == 0
    waiting.refresh_from_db()
    assert waiting.times_seen == 2  # one row that notes the wait, not one per run
    m3.state.add_supplier_invoice("S100", "NK-404", "10.00", "SEK", due="20261202")
    posted = run(payments)  # the invoice is there now: the payment goes by itself
    assert posted.synced == 1 and len(m3.state.journal_lines()) == 4
    waiting.refresh_from_db()
    assert waiting.resolved_at is not None
    assert run(payments).done == 0  # the file is done now: processed once


def test_a_payment_whose_invoice_never_comes_is_a_review_item_after_the_wait(
    payments: Integration, sftp: SftpSandbox, m3: M3Simulator, settings: Any
) -> None:
    m3.state.put_account("2440", "Accounts payable")
    m3.state.put_account("1930", "Bank SEK")
    drop(sftp, "payments_1.csv", PAY_HEAD + "P-2,V-NORD,NK-404,2026-11-20,10.00,SEK,ACH\r\n")
    first = run(payments)
    assert first.failed == 1 and not AuditRecord.objects.filter(NEEDS_REVIEW).exists()
    AuditRecord.objects.filter(waiting=True).update(
        created_at=timezone.now() - timedelta(hours=settings.MLC["WAIT_REVIEW_HOURS"] + 1)
    )
    late = run(payments)
    assert late.flagged == 1
    (item,) = AuditRecord.objects.filter(NEEDS_REVIEW)
    assert item.status == S.FLAGGED and "waited since" in item.reason
    assert item.times_seen == 2 and item.first_seen_at is not None
    assert run(payments).flagged == 0  # the file is done; the item waits for a person


def test_a_tenant_that_codes_per_line_gets_a_coding_journal_with_the_cost_centre(
    flow: Integration, sftp: SftpSandbox, m3: M3Simulator
) -> None:
    Connection.objects.filter(pk=flow.target_id).update(
        settings={**flow.target.settings, "ap_coding": "journal"}
    )
    FieldMapping.objects.create(
        integration=flow, kind="cost_center", source_value="CC-9", target_value="200"
    )
    drop(
        sftp,
        "invoice_lines_10.csv",
        "Invoice ID,Line Number,Description,Amount,GL Account,Cost Center\r\n"
        "ST-13,1,Hosting,40.00,6500,CC-9\r\n",
    )
    drop(
        sftp,
        "invoices_10.csv",
        HEAD + "ST-13,V-NORD,Nord Kontor AB,NK-101,2026-11-12,,SEK,40.00,,Approved\r\n",
    )
    record = run(flow).records.exclude(status=S.SKIPPED).get()
    assert record.status == S.SYNCED and "Coded line by line" in record.reason
    debit, credit = m3.state.journal_lines()
    assert (debit["AIT1"], debit["AIT2"], str(debit["CUAM"])) == ("6540", "200", "40.00")
    assert (credit["AIT1"], str(credit["CUAM"])) == ("6110", "-40.00")


def test_a_file_of_a_thousand_invoices_is_tens_of_requests(
    flow: Integration, sftp: SftpSandbox, m3: M3Simulator
) -> None:
    heads = [
        f"ST-{n},V-NORD,Nord Kontor AB,BULK-{n},2026-11-13,,SEK,12.50,2.50,Approved"
        for n in range(1000)
    ]
    lines = [f"ST-{n},1,Item,10.00,6000" for n in range(1000)]
    drop(sftp, "invoice_lines_big.csv", LINES_HEAD + "\r\n".join(lines) + "\r\n")
    drop(sftp, "invoices_big.csv", HEAD + "\r\n".join(heads) + "\r\n")
    before = m3.api_requests
    done = run(flow)
    assert done.synced == 1000 and len(m3.state.ap_invoices()) == 1000
    requests = m3.api_requests - before
    assert requests <= 60, requests  # 10 chunks of heads, lines, validation, 2 read-backs


def test_stampli_integrations_poll_every_15_minutes_unless_told_otherwise(
    flow: Integration,
) -> None:
    flow.schedule_type = Integration.ScheduleType.INTERVAL
    flow.interval_minutes = None
    flow.full_clean()
    assert flow.interval_minutes == 15


# -- issue 23: files as they really arrive ------------------------------------------------------


def row_d(total: str, invoice_id: str = "ST-D") -> str:
    return f"{invoice_id},V-NORD,Nord Kontor AB,NK-D,2026-11-12,,SEK,{total},,Approved\r\n"


def test_a_cut_file_is_never_posted_from_and_is_reported_only_when_overdue(
    flow: Integration, sftp: SftpSandbox, m3: M3Simulator
) -> None:
    drop(
        sftp,
        "invoice_lines_c.csv",
        LINES_HEAD + "ST-C,1,Paper,10.00,6000\r\nST-D,1,Ink,5.00,6000\r\n",
    )
    cut = (
        HEAD
        + 'ST-C,V-NORD,Nord Kontor AB,NK-C,2026-11-12,,SEK,10.00,,Approved\r\nST-D,V-NORD,"Nord'
    )
    path = drop(sftp, "invoices_c.csv", cut, age=600)  # settled, but its last record is cut
    quiet = run(flow)
    assert quiet.done == 0 and quiet.status == SyncRun.Status.SUCCEEDED and posted(m3) == []
    os.utime(path, (time.time() - 7200, time.time() - 7200))  # two hours on: say so
    told = run(flow).records.get()
    assert told.status == S.FAILED and told.waiting and posted(m3) == []
    assert "invoices_c.csv: it ends inside a quoted value" in told.reason
    assert "still so after 120 minutes" in told.reason and "Nothing of it was posted" in told.reason
    assert not (sftp.root / "archive").exists()
    Connection.objects.filter(pk=flow.source_id).update(
        settings={**flow.source.settings, "archive_files": True}
    )
    whole = HEAD + "ST-C,V-NORD,Nord Kontor AB,NK-C,2026-11-12,,SEK,10.00,,Approved\r\n"
    drop(sftp, "invoices_c.csv", whole + row_d("5.00"))
    done = run(flow)
    assert done.synced == 2 and len(posted(m3)) == 2
    told.refresh_from_db()
    assert told.resolved_at is not None  # the file was read whole: the wait is over
    for name in ("invoices_c.csv", "invoice_lines_c.csv"):  # archived as a pair, once done
        assert (sftp.root / "archive" / name).exists()


def test_lines_belong_to_their_own_export(
    flow: Integration, sftp: SftpSandbox, m3: M3Simulator
) -> None:
    drop(sftp, "invoice_lines_d1.csv", LINES_HEAD + "ST-D,1,Paper,312.75,6000\r\n")
    drop(sftp, "invoices_d1.csv", HEAD + row_d("312.75"))
    assert run(flow).synced == 1
    drop(sftp, "invoice_lines_d2.csv", LINES_HEAD + "ST-D,1,Paper,327.75,6000\r\n")
    drop(sftp, "invoices_d2.csv", HEAD + row_d("327.75"))  # a re-export with another amount
    changed = run(flow).records.get(status=S.FLAGGED)
    assert (
        "re-exported with other amounts" in changed.reason and "do not add up" not in changed.reason
    )
    drop(sftp, "invoice_lines_d3.csv", LINES_HEAD + "ST-D,1,Paper,312.75,6000\r\n")
    drop(sftp, "invoices_d3.csv", HEAD + row_d("312.75"))  # exactly the first again
    same = run(flow)
    assert same.records.exclude(status=S.SKIPPED).get().status == S.DUPLICATE
    assert same.flagged == 0 and posted(m3) == [("S100", "NK-D", "312.75")]


def test_a_bad_line_row_reaches_its_invoice_with_file_and_line(
    flow: Integration, sftp: SftpSandbox, m3: M3Simulator
) -> None:
    drop(
        sftp,
        "invoice_lines_e.csv",
        LINES_HEAD + "ST-E,1,Paper,10.00,6000\r\nST-E,2,Ink,five,6000\r\nST-F,1,Pens,4.00,6000\r\n",
    )
    drop(
        sftp,
        "invoices_e.csv",
        HEAD
        + "ST-E,V-NORD,Nord Kontor AB,NK-E,2026-11-12,,SEK,15.00,,Approved\r\n"
        + "ST-F,V-NORD,Nord Kontor AB,NK-F,2026-11-12,,SEK,4.00,,Approved\r\n",
    )
    done = run(flow)
    item = done.records.get(source_key="V-NORD/NK-E")
    assert item.status == S.FLAGGED
    assert "invoice_lines_e.csv Line 3: “Amount” “five” is not an amount" in item.reason
    assert "do not add up" not in item.reason
    assert posted(m3) == [("S100", "NK-F", "4.00")]


def test_an_unreadable_file_is_reported_once_then_skipped_until_it_changes(
    flow: Integration, sftp: SftpSandbox, m3: M3Simulator
) -> None:
    path = sftp.root / "outbound" / "invoices_pdf.csv"
    path.write_bytes(b"%PDF-1.7\n\x00\x01binary")
    os.utime(path, (1, 1))
    first = run(flow)
    assert first.flagged == 1 and "binary" in first.records.get().reason
    assert run(flow).done == 0  # not read again, not flagged again
    assert AuditRecord.objects.filter(integration=flow, status=S.FLAGGED).count() == 1


def test_a_header_file_before_its_lines_file_waits_without_failing(
    flow: Integration, sftp: SftpSandbox, m3: M3Simulator
) -> None:
    drop(sftp, "invoices_g.csv", HEAD + row_d("7.00", "ST-G").replace("NK-D", "NK-G"), age=120)
    early = run(flow)
    assert (early.done, early.failed, early.status) == (0, 0, SyncRun.Status.SUCCEEDED)
    assert not ProcessedFile.objects.filter(name="invoices_g.csv").exists()
    drop(sftp, "invoice_lines_g.csv", LINES_HEAD + "ST-G,1,Paper,7.00,6000\r\n")
    assert run(flow).synced == 1 and posted(m3) == [("S100", "NK-G", "7.00")]


def test_the_head_repeated_on_every_line_row_is_one_invoice(
    flow: Integration, sftp: SftpSandbox, m3: M3Simulator
) -> None:
    Connection.objects.filter(pk=flow.source_id).update(
        settings={**flow.source.settings, "csv_template": {"layout": "combined"}}
    )
    head = HEAD.replace("\r\n", ",Line Number,Description,Amount,GL Account\r\n")
    common = "ST-H,V-NORD,Nord Kontor AB,NK-H,2026-11-12,,SEK,30.00,,Approved"
    drop(
        sftp,
        "invoices_h.csv",
        head + f"{common},1,Paper,10.00,6000\r\n{common},2,Toner,20.00,6000\r\n",
    )
    done = run(flow)
    assert (done.synced, done.flagged, done.duplicate) == (1, 0, 0), list(
        done.records.values_list("reason", flat=True)
    )
    assert posted(m3) == [("S100", "NK-H", "30.00")]
    (batch,) = m3.state.ap_batches.values()
    assert [line["NLAM"] for line in batch["lines"].values()] == [
        Decimal("10.00"),
        Decimal("20.00"),
    ]


def test_an_eu_export_naming_vendors_only_is_matched_by_name(
    flow: Integration, sftp: SftpSandbox, m3: M3Simulator
) -> None:
    template = {
        "delimiter": ";",
        "encoding": "cp1252",
        "decimal": ",",
        "thousands": ".",
        "vendor_match": "name",
        "files": {"invoices": {"date_formats": ["%d.%m.%Y"]}},
    }
    Connection.objects.filter(pk=flow.source_id).update(
        settings={**flow.source.settings, "csv_template": template}
    )
    head = "Invoice ID;Vendor Name;Invoice Number;Invoice Date;Currency;Total Amount\r\n"
    body = head + "ST-EU;Nord Kontor AB;NK-EU;12.11.2026;SEK;1.234,50\r\n"
    path = sftp.root / "outbound" / "invoices_eu.csv"
    path.write_bytes(body.encode("cp1252"))
    os.utime(path, (1, 1))
    lines = "Invoice ID;Line Number;Amount;GL Account\r\nST-EU;1;1.234,50;6000\r\n"
    drop(sftp, "invoice_lines_eu.csv", lines)
    done = run(flow)
    assert done.synced == 1, list(done.records.values_list("reason", flat=True))
    assert posted(m3) == [("S100", "NK-EU", "1234.50")]  # the one supplier of exactly that name
