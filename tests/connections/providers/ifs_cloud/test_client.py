"""The IFS Cloud client against the IFS simulator over HTTP: OData paging, ETags, errors."""

from __future__ import annotations

from typing import Any

import pytest

from connections.models import Connection
from connections.providers.errors import ApiError, Rejected
from connections.providers.ifs_cloud import IfsCloud, Locked, StaleEtag
from connections.providers.ifs_cloud.client import key_segment
from connections.providers.registry import client_for
from connections.sandbox.base import Served
from connections.sandbox.ifs import IfsSimulator

CUSTOMERS = "CustomerHandling.svc/CustomerInfoSet"


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


def test_keys_are_odata_literals() -> None:
    assert key_segment({"CustomerId": "O'Brien"}) == "(CustomerId='O''Brien')"
    assert key_segment({"Company": "10", "InvoiceId": 42}) == "(Company='10',InvoiceId=42)"


@pytest.mark.parametrize("next_links", [False, True])
def test_a_query_reads_every_page_incrementally(
    ifs: IfsCloud, sim: IfsSimulator, next_links: bool
) -> None:
    sim.next_links = next_links
    before = sim.api_requests
    rows = list(
        ifs.query(
            "customers",
            orderby="ChangedDate,CustomerId",
            filter="ChangedDate ge '2026-11-03T00:00:00Z'",
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
        list(ifs.query("customers", orderby="CustomerId", page_size=5))


def _rewriting(get: Any) -> Any:
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        response = get(*args, **kwargs)
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


def test_a_stale_etag_is_read_again_and_retried_once(ifs: IfsCloud, sim: IfsSimulator) -> None:
    seen: list[str] = []

    def change(entity: dict[str, Any]) -> dict[str, Any]:
        seen.append(entity["Name"])
        if len(seen) == 1:  # someone else saves in between our read and our write
            sim.put(CUSTOMERS, CustomerId="10002", Name="Changed by a user")
        return {"Note": f"paid (was {entity['Name']})"}

    updated, _ = ifs.update("customers", {"CustomerId": "10002"}, change)
    assert seen == ["Customer 2", "Changed by a user"]
    assert updated["Note"] == "paid (was Changed by a user)"


def test_a_locked_record_is_a_retryable_failure(ifs: IfsCloud, sim: IfsSimulator) -> None:
    sim.lock_entity(CUSTOMERS, "10003")
    with pytest.raises(Locked) as locked:
        ifs.update("customers", {"CustomerId": "10003"}, lambda e: {"Note": "x"})
    assert locked.value.retryable and "locked" in locked.value.message
    sim.lock_entity(CUSTOMERS, "10003", locked=False)
    assert ifs.update("customers", {"CustomerId": "10003"}, lambda e: {"Note": "x"})[0]["Note"]


def test_a_stale_metadata_cache_is_retried_once(ifs: IfsCloud, sim: IfsSimulator) -> None:
    sim.stale_metadata = 1
    entity, _ = ifs.get("customers", {"CustomerId": "10004"})
    assert entity["CustomerId"] == "10004"
    sim.stale_metadata = 2  # still stale after one retry: a failure, not a loop
    with pytest.raises(ApiError, match="metadata cache"):
        ifs.get("customers", {"CustomerId": "10004"})


def test_odata_errors_become_plain_reasons(ifs: IfsCloud) -> None:
    with pytest.raises(Rejected) as refused:
        list(ifs.query("customers", orderby="CustomerId", filter="Name has 'x'"))
    assert "Only comparisons" in refused.value.message


def test_short_tokens_are_renewed(ifs: IfsCloud, sim: IfsSimulator) -> None:
    assert ifs.get("customers", {"CustomerId": "10005"})[0]
    sim.expire_tokens()  # the 180 s token died on the server
    assert ifs.get("customers", {"CustomerId": "10006"})[0]["CustomerId"] == "10006"
    assert sim.token_requests == 2
