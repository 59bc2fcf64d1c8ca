"""Stripe's limits as a connection uses them: from the key's mode and the account share."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from connections.models import Connection
from connections.providers.stripe.credentials import limits, percent


def stripe(key: str, **settings: object) -> Connection:
    return Connection(kind="stripe", credentials={"api_key": key}, settings=settings)


@pytest.mark.parametrize(
    ("key", "per_minute"),
    [
        ("sk_live_0123456789abcdef", 4800.0),  # 80 % of a live account's 100 a second
        ("rk_live_0123456789abcdef", 4800.0),  # a restricted live key too
        ("sk_test_0123456789abcdef", 1200.0),  # 80 % of a sandbox's 25 a second
    ],
)
def test_blank_limits_are_a_share_of_stripe_s_for_the_key_s_mode(
    key: str, per_minute: float
) -> None:
    assert limits(stripe(key)) == (per_minute, 20.0)  # and 80 % of each endpoint's 25
    blank = stripe(key, rate_limit_per_minute="", endpoint_rate_per_second=None)
    assert limits(blank) == (per_minute, 20.0)  # what the form saves for a blank field


def test_the_share_and_set_limits_are_honoured() -> None:
    assert limits(stripe("sk_live_x", account_share_percent=50)) == (3000.0, 12.5)
    set_ = stripe("sk_live_x", rate_limit_per_minute=900, endpoint_rate_per_second=5)
    assert limits(set_) == (900.0, 5.0)  # a number given is used as it is


@pytest.mark.parametrize("value", ["0", "101", "eighty", ""])
def test_a_share_out_of_range_is_a_form_error(value: str) -> None:
    with pytest.raises(ValidationError):
        percent(value)
    assert percent(" 75 % ") == 75


@pytest.mark.django_db
def test_the_client_paces_at_the_derived_limits() -> None:
    from connections.providers.stripe import StripeProvider

    conn = Connection.objects.create(
        name="Live", slug="live", kind="stripe", credentials={"api_key": "sk_live_x"}
    )
    config = StripeProvider(conn).client_config()
    assert (config.rate_limit_per_minute, config.endpoint_per_second) == (4800.0, 20.0)
