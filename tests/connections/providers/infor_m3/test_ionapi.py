"""Parsing .ionapi files: good ones, missing keys, not JSON."""

from __future__ import annotations

import pytest

from connections.providers.infor_m3.ionapi import IonApiError, parse_ionapi
from tests.conftest import IONAPI, ionapi_bytes


def test_a_good_file_gives_the_urls_and_keeps_unverified_keys() -> None:
    parsed = parse_ionapi(b"\xef\xbb\xbf" + ionapi_bytes())  # a BOM, as Windows tools write
    assert parsed.tenant == "ACME_TST"
    assert parsed.token_url == "http://127.0.0.1:9/ACME_TST/as/token.oauth2"
    assert parsed.revoke_url == "http://127.0.0.1:9/ACME_TST/as/revoke_token.oauth2"
    assert parsed.gateway_url == "http://127.0.0.1:9/infor/ACME_TST"
    assert parsed.values["ev"] == "U1234" and parsed.values["v"] == "1.0"


def test_missing_keys_are_named() -> None:
    data = {k: v for k, v in IONAPI.items() if k not in ("saak", "sask")}
    import json

    with pytest.raises(IonApiError, match="lacks required keys: saak, sask"):
        parse_ionapi(json.dumps(data))


def test_an_empty_value_counts_as_missing() -> None:
    with pytest.raises(IonApiError, match="cs"):
        parse_ionapi(ionapi_bytes(cs="  "))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "one JSON object"),
        (b"\xff\xfe\x00garbage", "not text"),
    ],
)
def test_not_an_ionapi_file(content: bytes, message: str) -> None:
    with pytest.raises(IonApiError, match=message):
        parse_ionapi(content)


def test_urls_must_be_urls() -> None:
    with pytest.raises(IonApiError, match="“pu” value is not an http"):
        parse_ionapi(ionapi_bytes(pu="mingle-sso/as/"))
