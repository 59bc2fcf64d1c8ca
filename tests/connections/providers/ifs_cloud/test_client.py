"""The IFS Cloud client against the IFS simulator over HTTP, which reads OData as strictly as a
real server: $metadata types, %20-encoded options, paging, ETags, lost answers, errors."""

from __future__ import annotations

from typing import Any

import pytest

from connections.models import Connection
from connections.providers.errors import ApiError, Rejected
from connections.providers.ifs_cloud import IfsCloud, Locked
from connections.providers.ifs_cloud.client import StaleEtag, encode_options, key_segment
from connections.providers.ifs_cloud.metadata import MetadataError, edm_literal
from connections.providers.registry import client_for
from connections.sandbox.base import Served
from connections.sandbox.ifs import IfsSimulator

CUSTOMERS = "CustomerHandling.svc/CustomerInfoSet"
COLLECTION = "main/ifsapplications/projection/v1/CustomerHandling.svc/CustomerInfoSet"


@pytest.fixture
def sim(ifs_sim: Served) -> IfsSimulator:
    app: IfsSimulator = ifs_sim.app  # type: ignore[assignment]
    for n in range(1, 13):
        app.put(
            CUSTOMERS,
            CustomerId=f"{10000 + n}",
            Name=f"Customer {n}",
            ChangedDate=f"2026-11-{n:02d}T08:00:00Z",
        )
    return app


@pytest.fixture
def ifs(ifs_connection: Connection, sim: IfsSimulator) -> IfsCloud:
    client = client_for(ifs_connection)
    assert isinstance(client, IfsCloud)
    return client


def test_keys_are_typed_by_metadata(ifs: IfsCloud) -> None:
    assert key_segment({"CustomerId": "O'Brien"}) == "(CustomerId=%27O%27%27Brien%27)"
    invoices = ifs.metadata("invoices")
    assert invoices.keys == ("Company", "InvoiceId")
    assert invoices.properties["InvoiceId"] == "Edm.Decimal"
    # The key is typed as $metadata says: a numeric id bare, even when it came as text.
    assert key_segment({"Company": "10", "InvoiceId": "100011"}, invoices) == (
        "(Company=%2710%27,InvoiceId=100011)"
    )
    with pytest.raises(MetadataError, match="not a number"):
        key_segment({"Company": "10", "InvoiceId": "CI-1"}, invoices)


def test_literals_follow_the_edm_type() -> None:
    assert edm_literal("Edm.DateTimeOffset", "2026-11-03T00:00:00") == "2026-11-03T00:00:00Z"
    assert edm_literal("Edm.DateTimeOffset", "2026-11-03T01:00:00+01:00") == (
        "2026-11-03T00:00:00Z"
    )
    assert edm_literal("Edm.Date", "2027-01-31") == "2027-01-31"
    assert edm_literal("Edm.Int32", 7) == "7"
    assert edm_literal("Edm.Decimal", "1210.50") == "1210.50"
    assert edm_literal("Edm.String", "a b'c") == "'a b''c'"
    enums = {"IfsApp.X.State": ("Posted", "Cancelled")}
    assert edm_literal("IfsApp.X.State", "Posted", enums) == "IfsApp.X.State'Posted'"
    with pytest.raises(MetadataError):
        edm_literal("IfsApp.X.State", "Nope", enums)
    with pytest.raises(MetadataError):
        edm_literal("Edm.Int32", "1.5")


def _token(ifs: IfsCloud) -> str:
    headers: dict[str, str] = {}
    ifs.http.auth.apply(headers)  # type: ignore[union-attr]
    return headers["Authorization"].removeprefix("Bearer ")


def test_query_options_are_percent_encoded_never_plus(ifs: IfsCloud, sim: IfsSimulator) -> None:
    assert encode_options([("$filter", "ChangedDate ge 2026-11-03T00:00:00Z")]) == (
        "$filter=ChangedDate%20ge%202026-11-03T00:00:00Z"
    )
    rows = list(ifs.query("customers", orderby=["CustomerId"], where=[("Name", "eq", "a+b c")]))
    assert rows == []  # the + and the space both reach the server as they are meant
    # What a form encoder sends, a strict server refuses: + is a plus, not a space.
    import requests

    refused = requests.get(
        ifs.http.url(COLLECTION),
        params={"$filter": "ChangedDate ge 2026-11-03T00:00:00Z"},
        headers={"Authorization": f"Bearer {_token(ifs)}"},
        timeout=5,
    )
    assert "+ge+" in refused.url and refused.status_code == 400


def test_a_field_metadata_does_not_declare_is_refused_before_any_call(
    ifs: IfsCloud, sim: IfsSimulator
) -> None:
    ifs.metadata("customers")
    before = sim.api_requests
    with pytest.raises(ApiError, match="has no field LastModified"):
        list(ifs.query("customers", orderby=["LastModified"]))
    with pytest.raises(ApiError, match="has no field Colour"):
        list(ifs.query("customers", orderby=["CustomerId"], select=["Colour"]))
    assert sim.api_requests == before


@pytest.mark.parametrize("next_links", [False, True])
def test_a_query_reads_every_page_incrementally(
    ifs: IfsCloud, sim: IfsSimulator, next_links: bool
) -> None:
    sim.next_links = next_links
    ifs.metadata("customers")  # read once; then every page is one request
    before = sim.api_requests
    rows = list(
        ifs.query(
            "customers",
            orderby=["ChangedDate", "CustomerId"],
            where=[("ChangedDate", "ge", "2026-11-03T00:00:00")],
            select=["CustomerId", "Name", "ChangedDate"],
            page_size=4,
        )
    )
    assert [r["CustomerId"] for r in rows] == [f"{10000 + n}" for n in range(3, 13)]
    assert sim.api_requests - before == 3  # 4 + 4 + 2: the short page ends it
    assert set(rows[0]) == {"CustomerId", "Name", "ChangedDate", "@odata.etag"}


def test_a_next_link_to_another_host_is_not_followed(ifs: IfsCloud, sim: IfsSimulator) -> None:
    sim.next_links = True
    ifs.http.get = _rewriting(ifs.http.get)  # type: ignore[method-assign]
    with pytest.raises(ApiError, match="another host"):
        list(ifs.query("customers", orderby=["CustomerId"], page_size=5))


def _rewriting(get: Any) -> Any:
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        response = get(*args, **kwargs)
        if "json" not in response.headers.get("Content-Type", ""):
            return response
        body = response.json()
        if "@odata.nextLink" in body:
            body["@odata.nextLink"] = "https://elsewhere.example/next"
            response._content = __import__("json").dumps(body).encode()
        return response

    return wrapped


def test_a_write_carries_the_etag_and_gets_a_new_one(ifs: IfsCloud, sim: IfsSimulator) -> None:
    entity, etag = ifs.get("customers", {"CustomerId": "10001"})
    assert etag == entity["@odata.etag"] and entity["Name"] == "Customer 1"
    updated, new_etag = ifs.patch("customers", {"CustomerId": "10001"}, {"Name": "Acme"}, etag=etag)
    assert updated["Name"] == "Acme" and new_etag != etag
    with pytest.raises(StaleEtag):  # the old ETag is stale now
        ifs.patch("customers", {"CustomerId": "10001"}, {"Name": "Again"}, etag=etag)


def test_a_stale_etag_is_read_again_and_written_once_more(ifs: IfsCloud, sim: IfsSimulator) -> None:
    seen: list[str] = []

    def change(entity: dict[str, Any]) -> dict[str, Any]:
        seen.append(entity["Name"])
        if len(seen) == 1:  # someone else saves in between our read and our write
            sim.put(CUSTOMERS, CustomerId="10002", Name="Changed by a user")
        return {"Email": f"paid (was {entity['Name']})"}

    updated, written = ifs.update("customers", {"CustomerId": "10002"}, change)
    assert seen == ["Customer 2", "Changed by a user"] and written
    assert updated["Email"] == "paid (was Changed by a user)"


def test_a_write_whose_answer_was_lost_is_read_back_not_sent_again(
    ifs: IfsCloud, sim: IfsSimulator
) -> None:
    ifs.metadata("customers")
    sim.faults.add("lose_response", match="PATCH", count=1)  # committed, answer lost
    before = sim.api_requests

    def change(entity: dict[str, Any]) -> dict[str, Any] | None:
        return None if entity.get("Email") == "x@y" else {"Email": "x@y"}

    entity, written = ifs.update("customers", {"CustomerId": "10007"}, change)
    assert entity["Email"] == "x@y" and not written  # found done on the read after the loss
    # read, PATCH (answer lost), read again: three calls, one write, no second PATCH, no 412
    assert sim.api_requests - before == 3
    assert sim.faults.taken.get("lose_response") == 1


def test_nothing_to_change_writes_nothing(ifs: IfsCloud, sim: IfsSimulator) -> None:
    before = sim.entity(CUSTOMERS, "10008")["@odata.etag"]  # type: ignore[index]
    _, written = ifs.update("customers", {"CustomerId": "10008"}, lambda e: None)
    assert not written
    assert sim.entity(CUSTOMERS, "10008")["@odata.etag"] == before  # type: ignore[index]


def test_a_locked_record_is_a_retryable_failure(ifs: IfsCloud, sim: IfsSimulator) -> None:
    sim.lock_entity(CUSTOMERS, "10003")
    with pytest.raises(Locked) as locked:
        ifs.update("customers", {"CustomerId": "10003"}, lambda e: {"Email": "x"})
    assert locked.value.retryable and "locked" in locked.value.message
    sim.lock_entity(CUSTOMERS, "10003", locked=False)
    assert ifs.update("customers", {"CustomerId": "10003"}, lambda e: {"Email": "x"})[0]["Email"]


def test_a_stale_metadata_cache_is_retried_once(ifs: IfsCloud, sim: IfsSimulator) -> None:
    ifs.metadata("customers")
    sim.stale_metadata = 1
    entity, _ = ifs.get("customers", {"CustomerId": "10004"})
    assert entity["CustomerId"] == "10004"
    sim.stale_metadata = 2  # still stale after one retry: a failure, not a loop
    with pytest.raises(ApiError, match="metadata cache"):
        ifs.get("customers", {"CustomerId": "10004"})


def test_odata_errors_become_plain_reasons(ifs: IfsCloud) -> None:
    with pytest.raises(Rejected) as refused:
        ifs.http.get(f"{COLLECTION}?$filter=Name%20has%20%27x%27")
    assert refused.value.status == 400 and refused.value.message


def test_short_tokens_are_renewed(ifs: IfsCloud, sim: IfsSimulator) -> None:
    assert ifs.get("customers", {"CustomerId": "10005"})[0]
    sim.expire_tokens()  # the 180 s token died on the server
    assert ifs.get("customers", {"CustomerId": "10006"})[0]["CustomerId"] == "10006"
    assert sim.token_requests == 2


@pytest.mark.parametrize("how", ["expand", "navigation path", "lines set"])
def test_invoice_lines_come_from_where_metadata_or_the_connection_says(
    ifs: IfsCloud, sim: IfsSimulator, ifs_connection: Connection, how: str
) -> None:
    from connections.sandbox.ifs_schema import INVOICES

    sim.put(
        INVOICES,
        Company="10",
        InvoiceId=7001,
        Currency="SEK",
        Objstate="Posted",
        ChangedDate="2026-11-20T08:00:00Z",
        Lines=[{"LineNo": 1, "Description": "A", "NetAmount": "10.50", "VatAmount": "2.63"}],
    )
    sim.expand_collections = how == "expand"
    if how == "lines set":
        sim.hide_navigations = True
        ifs_connection.settings = {
            **ifs_connection.settings,
            "entities": {"invoice_lines": "CustomerInvoiceHandling.svc/CustomerInvoiceLineSet"},
        }
        ifs = client_for(ifs_connection)  # type: ignore[assignment]
    (invoice,) = ifs.invoices(orderby=["Company", "InvoiceId"], where=[], page_size=100)
    (line,) = invoice["Lines"]
    assert (line["LineNo"], line["NetAmount"], line["VatAmount"]) == (1, "10.5", "2.63")
    assert invoice["InvoiceId"] == 7001


def test_no_way_to_an_invoice_s_lines_is_a_plain_failure_of_the_test(
    ifs: IfsCloud, sim: IfsSimulator
) -> None:
    assert ifs.check().ok
    sim.hide_navigations = True
    result = ifs.check()
    assert not result.ok
    assert any("cannot tell where the lines of an IFS invoice are" in d for d in result.details)
    with pytest.raises(ApiError, match="lines entity set"):
        list(ifs.invoices(orderby=["Company"], where=[], page_size=10))


def test_an_address_comes_from_the_header_or_the_address_navigation(
    ifs: IfsCloud, sim: IfsSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    sim.put(CUSTOMERS, CustomerId="20001", Name="A", Address1="Storgatan 1", City="Lund")
    header, _ = ifs.get("customers", {"CustomerId": "20001"})
    assert "City" not in header  # $metadata puts addresses in CustomerInfoAddresses
    fields = ["Address1", "City"]
    full = ifs.with_address(header, fields, "CustomerInfoAddresses")
    assert (full["Address1"], full["City"]) == ("Storgatan 1", "Lund")
    # A tenant whose header declares the address: read as it is, no further call.
    info = ifs.metadata("customers")
    on_header = replace(
        info, properties={**info.properties, "Address1": "Edm.String", "City": "Edm.String"}
    )
    monkeypatch.setattr(IfsCloud, "metadata", lambda self, need: on_header)
    before = sim.api_requests
    row = {"CustomerId": "20001", "Address1": "Kept 2", "City": "Malmö"}
    assert ifs.with_address(row, fields, "CustomerInfoAddresses") == row
    assert sim.api_requests == before


def test_the_tenant_s_limit_is_kept_and_the_default_pace_stays_under_it(
    ifs_connection: Connection, sim: IfsSimulator
) -> None:
    """The simulator answers 429 past about 1,000 requests a minute with a small burst (the
    contract); the connection's default, 800 a minute, is refused at most once, under load,
    and one set far above the tenant's limit is, then paces itself on the 429's Retry-After."""
    assert (sim.rate_limit.per_minute, sim.rate_limit.burst) == (1000, 10)
    paced = client_for(ifs_connection)
    for _ in range(25):
        assert len(list(paced.query("customers", orderby=["CustomerId"]))) == 12
    paced = sim.rate_limit.rejected
    assert paced <= 1  # none, or a stray one when the machine is loaded (retried, never lost)
    ifs_connection.settings = {**ifs_connection.settings, "rate_limit_per_minute": 60_000}
    ifs_connection.save()
    fast = client_for(ifs_connection)
    for _ in range(25):
        assert len(list(fast.query("customers", orderby=["CustomerId"]))) == 12
    assert sim.rate_limit.rejected - paced > paced  # a pace far above the limit is refused
