"""Rotating a Stripe secret key against the Stripe sandbox's v2 API keys: the new key stored,
the old one working through its grace period, a lost answer asked again (one rotation, not
two), a refusal in plain words, the schedule, and a run under way that never fails for it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from connections.models import Connection, KeyRotation
from connections.providers.stripe import keys
from connections.sandbox.base import Served
from connections.sandbox.stripe import StripeSimulator
from connections.services import (
    key_rotate,
    key_rotation_due,
    keys_rotate_due,
)

R = KeyRotation.Status


def sim_of(served: Served) -> StripeSimulator:
    return served.app  # type: ignore[return-value]


def accepted(stripe: StripeSimulator, secret: str) -> bool:
    return stripe._authenticate(f"Bearer {secret}") is None


def test_a_rotation_stores_the_new_key_and_the_old_one_works_through_its_grace(
    stripe_connection: Connection, stripe_sim: Served
) -> None:
    stripe = sim_of(stripe_sim)
    old = stripe_connection.credentials["api_key"]
    stripe_connection.settings["rotation_grace_minutes"] = 30
    stripe_connection.save()

    rotation = key_rotate(connection=stripe_connection, requested_by="ops")

    assert rotation.status == R.DONE, rotation.message
    stripe_connection.refresh_from_db()
    new = stripe_connection.credentials["api_key"]
    assert new != old and new == stripe.api_key
    assert stripe_connection.settings["api_key_id"] == rotation.new_key_id == stripe.api_key_id
    assert rotation.old_key_id == "ak_sandbox_initial" and rotation.private_key == ""
    assert "keeps working until" in rotation.message and new not in rotation.message
    assert accepted(stripe, old) and accepted(stripe, new)  # the grace period
    now = stripe.clock()
    stripe.clock = lambda: now + 31 * 60
    assert not accepted(stripe, old) and accepted(stripe, new)  # revoked after it
    assert rotation.old_key_expires_at is not None


def test_the_secret_is_read_from_the_encrypted_answer(stripe_sim: Served) -> None:
    private, public = keys.new_key_pair()
    stripe = sim_of(stripe_sim)
    answer = stripe.api_v2_keys(
        "POST",
        ["ak_sandbox_initial", "rotate"],
        {"public_key": keys.public_key_param(public, "k1"), "expire_current_key_in_minutes": 5},
    )
    encrypted_only = {"secret_key": {"encrypted_secret": answer["secret_key"]["encrypted_secret"]}}
    assert keys.read_secret(encrypted_only, private) == stripe.api_key
    other, _ = keys.new_key_pair()
    with pytest.raises(keys.SecretUnreadable):
        keys.read_secret(encrypted_only, other)  # encrypted to someone else
    with pytest.raises(keys.SecretUnreadable):
        keys.read_secret({"secret_key": {"secret_token_redacted": "sk_test_…abcd"}}, private)


def test_a_lost_answer_is_asked_again_and_makes_one_rotation(
    stripe_connection: Connection, stripe_sim: Served
) -> None:
    stripe = sim_of(stripe_sim)
    # Every try of this call loses its answer (the client's own retries reuse the key too).
    stripe.faults.add("lose_response", match="POST /v2/iam/api_keys", count=10)
    first = key_rotate(connection=stripe_connection)
    assert first.status == R.PENDING and "same rotation" in first.message
    assert len(stripe.api_keys) == 2  # Stripe made the key; its answers were lost
    stripe.faults.clear()

    assert key_rotation_due(connection=stripe_connection)  # left unfinished: resumed
    second = key_rotate(connection=stripe_connection)
    assert second.pk == first.pk and second.status == R.DONE and second.attempts == 2
    assert len(stripe.api_keys) == 2  # the same rotation, not a second one
    stripe_connection.refresh_from_db()
    assert stripe_connection.credentials["api_key"] == stripe.api_key


def test_a_rotation_under_way_elsewhere_is_left_alone(
    stripe_connection: Connection, stripe_sim: Served
) -> None:
    held = KeyRotation.objects.create(
        connection=stripe_connection,
        old_key_id="ak_sandbox_initial",
        idempotency_key="mlc-rotate-held",
        lease_until=timezone.now() + timedelta(minutes=5),
    )
    assert key_rotate(connection=stripe_connection).pk == held.pk
    assert len(sim_of(stripe_sim).api_keys) == 1  # nothing asked of Stripe
    assert not key_rotation_due(connection=stripe_connection)


def test_a_refused_rotation_says_why_and_keeps_the_key(
    stripe_connection: Connection, stripe_sim: Served
) -> None:
    old = stripe_connection.credentials["api_key"]
    stripe_connection.settings["api_key_id"] = "ak_nosuchkey"
    stripe_connection.save()
    rotation = key_rotate(connection=stripe_connection)
    assert rotation.status == R.FAILED
    assert rotation.message.startswith("Stripe refused to rotate the key: ")
    assert "unchanged" in rotation.message and rotation.private_key == ""
    stripe_connection.refresh_from_db()
    assert stripe_connection.credentials["api_key"] == old


def test_the_schedule_rotates_when_due(stripe_connection: Connection, stripe_sim: Served) -> None:
    assert not key_rotation_due(connection=stripe_connection)  # no schedule set
    stripe_connection.settings["rotate_every_days"] = 30
    stripe_connection.save()
    assert not key_rotation_due(connection=stripe_connection)  # created just now
    Connection.objects.filter(pk=stripe_connection.pk).update(
        created_at=timezone.now() - timedelta(days=31)
    )
    stripe_connection.refresh_from_db()
    assert key_rotation_due(connection=stripe_connection)
    assert keys_rotate_due() == {"rotated": 1, "not_finished": 0, "failed": 0}
    assert not key_rotation_due(connection=stripe_connection)  # next one in 30 days
    assert key_rotation_due(
        connection=stripe_connection, now=timezone.now() + timedelta(days=30, minutes=1)
    )
    assert keys_rotate_due() == {"rotated": 0, "not_finished": 0, "failed": 0}


def test_a_failed_rotation_is_tried_again_a_day_later(
    stripe_connection: Connection, stripe_sim: Served
) -> None:
    stripe_connection.settings.update(rotate_every_days=1, api_key_id="ak_nosuchkey")
    stripe_connection.save()
    Connection.objects.filter(pk=stripe_connection.pk).update(
        created_at=timezone.now() - timedelta(days=2)
    )
    stripe_connection.refresh_from_db()
    assert keys_rotate_due()["failed"] == 1
    assert not key_rotation_due(connection=stripe_connection)
    later = timezone.now() + timedelta(days=1, minutes=1)
    assert key_rotation_due(connection=stripe_connection, now=later)


def test_a_rotation_schedule_needs_the_key_id(stripe_connection: Connection) -> None:
    stripe_connection.settings = {**stripe_connection.settings, "rotate_every_days": 30}
    stripe_connection.settings.pop("api_key_id")
    with pytest.raises(ValidationError, match="API key id"):
        stripe_connection.full_clean()
    stripe_connection.settings.update(api_key_id="ak_x1", rotation_grace_minutes=20000)
    with pytest.raises(ValidationError, match="7 days"):
        stripe_connection.full_clean()


def test_a_wrong_key_is_not_swapped_for_the_stored_one(
    stripe_connection: Connection, stripe_sim: Served
) -> None:
    """Only a key that was rotated away is replaced after a 401: a wrong key being tried
    (say, typed into the form) stays refused."""
    from connections.providers.registry import client_for

    stripe_connection.credentials["api_key"] = "sk_test_wrongwrongwrong123"
    result = client_for(stripe_connection, sleep=lambda s: None).check()
    assert not result.ok


def test_the_rotation_sandbox_refuses_what_stripe_refuses(stripe_sim: Served) -> None:
    from connections.sandbox.stripe import StripeError

    stripe = sim_of(stripe_sim)
    _, public = keys.new_key_pair()
    good = keys.public_key_param(public, "k")
    bad: list[dict[str, Any]] = [
        {},  # no public key for a secret key
        {"public_key": {"pem_key": {"algorithm": "EC", "data": public}}},
        {"public_key": {"pem_key": {"algorithm": "RSA", "data": "not a key"}}},
        {"public_key": good, "expire_current_key_in_minutes": 10081},
        {"public_key": good, "expire_current_key_in_minutes": "60"},
    ]
    for params in bad:
        with pytest.raises(StripeError) as info:
            stripe.api_v2_keys("POST", ["ak_sandbox_initial", "rotate"], params)
        assert info.value.status == 400, params
    with pytest.raises(StripeError) as missing:
        stripe.api_v2_keys("POST", ["ak_nope", "rotate"], {"public_key": good})
    assert missing.value.status == 404
    assert len(stripe.api_keys) == 1


def test_rotation_is_offered_by_capability_never_by_the_name_of_a_system(
    make_connection: Any,
) -> None:
    """Which systems rotate keys comes from the registry (``RotatesKeys``): a system without
    it is refused plainly and never scheduled."""
    from connections.providers.capabilities import RotatesKeys
    from connections.providers.registry import SYSTEMS, capable

    assert [kind for kind in SYSTEMS if capable(kind, RotatesKeys)] == ["stripe"]
    cin7 = make_connection("cin7")
    assert not key_rotation_due(connection=cin7)
    with pytest.raises(ValueError, match="not rotated by ml-connector"):
        key_rotate(connection=cin7)
    assert keys_rotate_due() == {"rotated": 0, "not_finished": 0, "failed": 0}


@pytest.mark.parametrize("enc", ["A128GCM", "A256GCM", "A128CBC-HS256", "A256CBC-HS512"])
@pytest.mark.parametrize("alg", ["RSA-OAEP", "RSA-OAEP-256"])
def test_a_rotation_reads_the_secret_whichever_rsa_oaep_and_aes_stripe_seals_it_with(
    stripe_connection: Connection, stripe_sim: Served, alg: str, enc: str
) -> None:
    """Stripe publishes no JWE algorithms, and a live key carries no plain token: the secret
    is read from the sealed one alone, under every RSA-OAEP key wrap and AES encryption."""
    stripe = sim_of(stripe_sim)
    stripe.secret_sealing, stripe.plain_token = (alg, enc), False
    rotation = key_rotate(connection=stripe_connection)
    assert rotation.status == R.DONE, rotation.message
    stripe_connection.refresh_from_db()
    assert stripe_connection.credentials["api_key"] == stripe.api_key


def test_a_secret_sealed_with_rsa1_5_is_refused_and_the_old_key_kept(
    stripe_connection: Connection, stripe_sim: Served
) -> None:
    stripe = sim_of(stripe_sim)
    old = stripe_connection.credentials["api_key"]
    stripe.secret_sealing, stripe.plain_token = ("RSA1_5", "A128GCM"), False
    rotation = key_rotate(connection=stripe_connection)
    assert rotation.status == R.FAILED and "could not read its secret" in rotation.message
    stripe_connection.refresh_from_db()
    assert stripe_connection.credentials["api_key"] == old
