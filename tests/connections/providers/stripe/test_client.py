"""The Stripe client (official library on our HTTP core) against the Stripe simulator."""

from __future__ import annotations

import pytest

from connections.models import Connection
from connections.providers.errors import Rejected
from connections.providers.registry import client_for
from connections.providers.stripe import StripeProvider
from connections.sandbox.base import Served
from connections.sandbox.stripe import StripeSimulator


@pytest.fixture
def api(stripe_connection: Connection) -> StripeProvider:
    client = client_for(stripe_connection, sleep=lambda s: None)
    assert isinstance(client, StripeProvider)
    return client


def sim_of(served: Served) -> StripeSimulator:
    return served.app  # type: ignore[return-value]


def test_customers_are_found_by_erp_number_and_created_once_per_key(
    api: StripeProvider,
    stripe_sim: Served,
) -> None:
    assert api.find_customer(key="m3_customer", value="C100") is None
    params = {"name": "Acme", "email": "ap@acme.test", "metadata": {"m3_customer": "C100"}}
    first = api.create_customer(params, idempotency_key="mlc:1:c:C100:1")
    again = api.create_customer(params, idempotency_key="mlc:1:c:C100:1")  # a retry
    assert first["id"] == again["id"] and len(sim_of(stripe_sim).objects["customer"]) == 1
    assert api.find_customer(key="m3_customer", value="C100")["id"] == first["id"]
    with pytest.raises(Rejected, match="same parameters"):
        api.create_customer({**params, "name": "Other"}, idempotency_key="mlc:1:c:C100:1")


def test_an_invoice_is_drafted_given_lines_and_finalized(api: StripeProvider) -> None:
    customer = api.create_customer({"name": "Acme"}, idempotency_key="k-cust")
    invoice = api.create_invoice(
        {
            "customer": customer["id"],
            "currency": "eur",
            "collection_method": "send_invoice",
            "days_until_due": 30,
            "metadata": {"m3_invoice": "9001"},
        },
        [
            {"amount": 100000, "currency": "eur", "description": "Goods"},
            {"amount": 21000, "currency": "eur", "description": "VAT"},
        ],
        idempotency_key="k-inv",
    )
    assert invoice["status"] == "open" and invoice["amount_due"] == 121000
    assert [line["amount"] for line in invoice["lines"]["data"]] == [100000, 21000]
    assert api.find_invoice(key="m3_invoice", value="9001")["id"] == invoice["id"]


def test_an_interrupted_invoice_is_completed_not_duplicated(
    api: StripeProvider,
    stripe_sim: Served,
) -> None:
    customer = api.create_customer({"name": "Acme"}, idempotency_key="k-cust")
    lines = [
        {"amount": 500, "currency": "eur", "description": "A"},
        {"amount": 700, "currency": "eur", "description": "B"},
    ]
    sim = sim_of(stripe_sim)
    sim.faults.add("status", status=400, match="/finalize", count=1)  # finalize fails
    with pytest.raises(Rejected):
        api.create_invoice(
            {"customer": customer["id"], "currency": "eur", "metadata": {"m3_invoice": "77"}},
            lines,
            idempotency_key="k-77",
        )
    draft = api.find_invoice(key="m3_invoice", value="77")
    assert draft["status"] == "draft" and len(draft["lines"]["data"]) == 2
    done = api.complete_invoice(draft, lines, idempotency_key="k-77")
    assert done["status"] == "open" and done["amount_due"] == 1200
    assert len(sim.objects["invoice"]) == 1 and len(sim.objects["invoiceitem"]) == 2


def test_payments_link_back_to_their_invoice_and_events_list_them(
    api: StripeProvider,
    stripe_sim: Served,
) -> None:
    sim = sim_of(stripe_sim)
    customer = api.create_customer({"name": "Acme"}, idempotency_key="k1")
    invoice = api.create_invoice(
        {"customer": customer["id"], "currency": "eur"},
        [{"amount": 1000, "currency": "eur"}],
        idempotency_key="k2",
    )
    paid = sim.act(lambda: sim.pay_invoice(invoice["id"]))
    assert paid["status"] == "paid"
    (payment,) = sim.objects["invoice_payment"].values()
    pi = payment["payment"]["payment_intent"]
    assert api.invoice_for_payment_intent(pi)["id"] == invoice["id"]
    charge = api.get_charge(api.get_payment_intent(pi)["latest_charge"])
    assert api.get_fee(charge["balance_transaction"]) == 59  # 2.9% + 30
    types = [e["type"] for e in api.list_events(since=0)]
    assert types.count("invoice.paid") == 1 and "charge.succeeded" in types


def test_rate_limit_answers_are_retried(api: StripeProvider, stripe_sim: Served) -> None:
    sim_of(stripe_sim).faults.add("status", status=429, count=2, match="/v1/customers")
    assert api.check().ok


def test_a_wrong_key_is_refused_without_echoing_it(stripe_connection: Connection) -> None:
    stripe_connection.credentials["api_key"] = "sk_test_wrongwrongwrong123"
    result = client_for(stripe_connection, sleep=lambda s: None).check()
    assert not result.ok and "wrongwrongwrong123" not in result.message


def test_each_endpoint_is_named_as_stripe_counts_its_limit() -> None:
    from connections.providers.stripe.client import endpoint_of
    from connections.sandbox.stripe import operation

    cases = {
        ("post", "/v1/invoices"): "POST /v1/invoices",
        ("POST", "/v1/invoices/in_1N2xAbC/finalize"): "POST /v1/invoices/{id}/finalize",
        ("GET", "/v1/payment_intents/pi_3Mt0"): "GET /v1/payment_intents/{id}",
        ("POST", "/v1/test_helpers/test_clocks"): "POST /v1/test_helpers/test_clocks",
        ("GET", "/v1/customers/search"): "GET /v1/customers/search",
    }
    for (method, path), named in cases.items():
        assert endpoint_of(method, path) == operation(method, path) == named


@pytest.mark.parametrize("paced", [True, False])
def test_a_fast_account_still_keeps_each_endpoint_under_its_own_limit(
    stripe_connection: Connection, stripe_sim: Served, paced: bool
) -> None:
    """A live account's 100 a second in all, but Stripe's 25 a second for each endpoint (here
    5 with a burst of 2, to keep the test short): with the endpoint's own bucket nothing is
    refused; without it (a limit far above the server's) the server says 429."""
    sim = sim_of(stripe_sim)
    sim.set_conditions(endpoint_rate_per_second=5, endpoint_burst=2)
    stripe_connection.settings = {
        **stripe_connection.settings,
        "rate_limit_per_minute": 6000,
        "rate_limit_burst": 50,
        "endpoint_rate_per_second": 5 if paced else 1000,
        "max_attempts": 10,
    }
    stripe_connection.save()
    api = client_for(stripe_connection)
    for n in range(12):
        api.create_customer({"name": f"Fast {n}"}, idempotency_key=f"fast-{paced}-{n}")
    refused = sim.endpoint_limit.rejected
    assert (refused == 0) if paced else (refused > 0)
    assert len([c for c in sim.objects["customer"].values() if c["name"].startswith("Fast")]) == 12


def test_the_simulator_keeps_stripe_s_sandbox_limits_and_the_defaults_stay_under_them(
    stripe_connection: Connection, stripe_sim: Served
) -> None:
    """By default the simulator refuses what Stripe refuses a sandbox (25 a second for the
    account and for each endpoint, a small burst); a connection at its default settings (80 %
    of those limits) is refused at most once, under load — and one set far above them is, as
    Stripe would; every create goes through either way."""
    sim = sim_of(stripe_sim)
    assert (sim.rate_limit.per_minute, sim.endpoint_limit.per_minute) == (1500, 1500)
    assert sim.rate_limit.burst == sim.endpoint_limit.burst == 10
    api = client_for(stripe_connection)  # the fixture's connection: Stripe limits left blank
    for n in range(40):
        api.create_customer({"name": f"Paced {n}"}, idempotency_key=f"paced-{n}")
    paced = sim.rate_limit.rejected + sim.endpoint_limit.rejected
    assert paced <= 1  # none, or a stray one when the machine is loaded (retried, never lost)
    stripe_connection.settings = {
        **stripe_connection.settings,
        "rate_limit_per_minute": 60_000,
        "endpoint_rate_per_second": 1000,
        "max_attempts": 10,
    }
    stripe_connection.save()
    fast = client_for(stripe_connection)
    for n in range(40):
        fast.create_customer({"name": f"Fast {n}"}, idempotency_key=f"unpaced-{n}")
    fast = sim.rate_limit.rejected + sim.endpoint_limit.rejected - paced
    assert fast >= 3 > paced  # Stripe refuses a pace far above its limits, as it would
    assert (
        sum(c["name"].startswith(("Paced", "Fast")) for c in sim.objects["customer"].values()) == 80
    )
