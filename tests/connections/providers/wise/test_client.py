"""The Wise client against the Wise simulator over HTTP: both kinds of auth, recipients with
seek paging and delete, quotes, transfers, and Wise's errors as plain reasons."""

from __future__ import annotations

from typing import Any

import pytest

from connections.models import Connection
from connections.providers.errors import AuthFailed, Rejected
from connections.providers.registry import client_for
from connections.providers.wise import WiseProvider
from connections.sandbox.base import Served
from connections.sandbox.wise import PROFILE_ID, WiseSimulator

IBAN = "DE89370400440532013000"


@pytest.fixture
def sim(wise_sim: Served) -> WiseSimulator:
    return wise_sim.app  # type: ignore[return-value]


@pytest.fixture
def wise(wise_connection: Connection) -> WiseProvider:
    return client_for(wise_connection, sleep=lambda s: None)  # type: ignore[return-value]


def recipient(name: str, iban: str = IBAN, currency: str = "EUR") -> dict[str, Any]:
    return {
        "currency": currency,
        "type": "iban",
        "accountHolderName": name,
        "details": {"legalType": "BUSINESS", "IBAN": iban},
    }


def test_oauth_tokens_are_fetched_once_and_reused(wise: WiseProvider, sim: WiseSimulator) -> None:
    assert wise.profile_id() == PROFILE_ID
    wise.profiles()
    assert sim.token_requests == 1


def test_a_personal_token_is_a_fixed_bearer(
    wise_connection: Connection, sim: WiseSimulator
) -> None:
    wise_connection.credentials = {"api_token": sim.api_token}
    wise_connection.save()
    wise = client_for(wise_connection)
    assert wise.check().ok and sim.token_requests == 0
    wise_connection.credentials = {"api_token": "00000000-0000-4000-8000-000000000000"}
    with pytest.raises(AuthFailed):
        client_for(wise_connection, sleep=lambda s: None).profiles()  # type: ignore[attr-defined]


def test_the_first_business_profile_pays_when_none_is_set(
    wise_connection: Connection,
) -> None:
    wise_connection.settings.pop("profile_id")
    assert client_for(wise_connection).profile_id() == PROFILE_ID  # type: ignore[attr-defined]


def test_recipients_are_listed_over_seek_pages(wise: WiseProvider, sim: WiseSimulator) -> None:
    made = [wise.create_recipient(recipient(f"Supplier {n} GmbH"))["id"] for n in range(250)]
    before = sim.api_requests
    listed = [r["id"] for r in wise.list_recipients(currency="EUR")]
    assert listed == made and sim.api_requests - before == 3  # 100 + 100 + 50
    assert list(wise.list_recipients(currency="GBP")) == []


def test_a_deleted_recipient_is_gone_and_deleting_again_is_no_error(
    wise: WiseProvider, sim: WiseSimulator
) -> None:
    made = wise.create_recipient(recipient("Delete Me AB"))
    assert wise.delete_recipient(made["id"]) is True
    assert wise.delete_recipient(made["id"]) is False  # already gone
    assert [r["id"] for r in wise.list_recipients()] == []


def test_a_bad_iban_is_refused_naming_the_field(wise: WiseProvider, sim: WiseSimulator) -> None:
    with pytest.raises(Rejected) as refused:
        wise.create_recipient(recipient("Typo AB", iban="DE89370400440532013001"))
    # the text is neutral, as Wise publishes none to rely on: the field is in the error's path
    assert refused.value.status == 422 and "IBAN" in str(refused.value.summary())
    assert sim.violations and "IBAN" in sim.violations[-1]


def test_a_quote_for_an_invoice_amount(wise: WiseProvider) -> None:
    made = wise.create_recipient(recipient("Quote Me AB"))
    quote = wise.create_quote(
        source_currency="SEK",
        target_currency="EUR",
        target_amount="1250.40",
        target_account=made["id"],
    )
    assert quote["targetAmount"] == 1250.40 and quote["targetCurrency"] == "EUR"
    assert len(quote["id"]) == 36 and quote["status"] == "PENDING"
    assert quote["preferredPayIn"] == "BALANCE"  # funded from the balance, priced as such
    with pytest.raises(Rejected) as refused:
        wise.create_quote(source_currency="SEK", target_currency="XXX", target_amount="1")
    assert "targetCurrency" in str(refused.value.summary())


def test_the_simulator_holds_quotes_to_wises_quote_reference(
    wise: WiseProvider, sim: WiseSimulator
) -> None:
    made = wise.create_recipient(recipient("Strict AB"))
    profile = wise.profile_id()
    bad = [
        {"sourceCurrency": "EUR", "targetCurrency": "EUR"},  # no amount
        {"sourceCurrency": "EUR", "targetCurrency": "EUR", "sourceAmount": 1, "targetAmount": 1},
        {"sourceCurrency": "EUR", "targetCurrency": "EUR", "targetAmount": 10.005},
        {"sourceCurrency": "EUR", "targetCurrency": "JPY", "targetAmount": 100.5},
        {"sourceCurrency": "EUR", "targetCurrency": "EUR", "targetAmount": "10"},
        {
            "sourceCurrency": "EUR",
            "targetCurrency": "GBP",
            "targetAmount": 5,
            "targetAccount": made["id"],
        },
        {
            "sourceCurrency": "EUR",
            "targetCurrency": "EUR",
            "targetAmount": 5,
            "preferredPayIn": "CASH",
        },
    ]
    for body in bad:
        with pytest.raises(Rejected):
            wise.http.post(f"/v3/profiles/{profile}/quotes", json=body)
    assert len(sim.violations) == len(bad) and not sim.quotes
    wise.delete_recipient(made["id"])
    with pytest.raises(Rejected):  # a deleted recipient is no target account
        wise.create_quote(
            source_currency="EUR",
            target_currency="EUR",
            target_amount="5",
            target_account=made["id"],
        )
    ok = wise.create_quote(source_currency="EUR", target_currency="JPY", target_amount="1000")
    assert wise.http.get(f"/v3/profiles/{profile}/quotes/{ok['id']}").json()["id"] == ok["id"]


def test_account_requirements_name_the_fields_of_each_recipient_type(wise: WiseProvider) -> None:
    usd = wise.account_requirements(source_currency="EUR", target_currency="USD")
    keys = {t["type"]: [g["key"] for f in t["fields"] for g in f["group"]] for t in usd}
    assert set(keys) == {"aba", "swift_code"}
    assert "accountHolderName" in keys["aba"]  # v1.1 (Accept-Minor-Version: 1)
    assert {"address.firstLine", "address.city", "address.country"} <= set(keys["swift_code"])
    eur = wise.account_requirements(source_currency="SEK", target_currency="EUR")
    assert [t["type"] for t in eur] == ["iban"]
    assert not any(g["key"].startswith("address.") for f in eur[0]["fields"] for g in f["group"])
    from_usd = wise.account_requirements(source_currency="USD", target_currency="EUR")
    assert any(g["key"] == "address.city" for f in from_usd[0]["fields"] for g in f["group"])


def test_transfers_are_read_page_by_page(wise: WiseProvider, sim: WiseSimulator) -> None:
    made = wise.create_recipient(recipient("Paid AB"))
    quote = wise.create_quote(
        source_currency="EUR", target_currency="EUR", target_amount="10", target_account=made["id"]
    )
    ids = [sim.make_transfer(quote["id"], made["id"], f"INV-{n}")["id"] for n in range(130)]
    sim.move(ids[0], "processing")
    assert [t["id"] for t in wise.list_transfers()] == sorted(ids, reverse=True)
    assert [t["id"] for t in wise.list_transfers(status="processing")] == [ids[0]]
    assert wise.get_transfer(ids[0])["status"] == "processing"


def test_a_token_wise_no_longer_accepts_is_renewed_once(
    wise: WiseProvider, sim: WiseSimulator
) -> None:
    wise.profiles()
    sim.expire_tokens()  # revoked early (or past its 12 hours)
    assert wise.profiles() and sim.token_requests == 2
