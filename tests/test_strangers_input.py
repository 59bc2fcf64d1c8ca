"""No input a stranger can send gives a 500: the webhook edge (with valid signatures, so the
body itself is what is tested) and the admin forms, fed by hypothesis.

CI runs 60 examples a test; ``HYPOTHESIS_EXAMPLES=600`` digs deeper (run before a release).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from connections.models import Connection
from connections.sandbox.stripe import sign
from syncs.flows import get_flow
from syncs.models import Integration, WebhookEvent

SETTINGS = settings(
    max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# JSON-ish values, including the ones that hurt: NUL, lone surrogates, huge and odd numbers.
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(alphabet=st.characters(codec=None), max_size=40)
    | st.sampled_from(["\x00", "\ud800", "evt_" + "x" * 300, "", "1e400"])
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


def stripe_like(extra: dict[str, Any]) -> dict[str, Any]:
    base = {
        "id": "evt_1",
        "object": "event",
        "type": "charge.succeeded",
        "created": int(time.time()),
        "data": {"object": {"id": "ch_1"}},
    }
    return {**base, **extra}


@pytest.fixture
def stripe_conn(make_connection: Any) -> Connection:
    return make_connection("stripe")


def post_signed(client: Client, stripe_conn: Connection, body: str) -> Any:
    """POST ``body`` to the Stripe webhook, signed with the connection's secret."""
    body_bytes = body.encode("utf-8", "surrogatepass")
    return client.post(
        f"/webhooks/stripe/{stripe_conn.slug}/",
        body_bytes,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sign(
            body_bytes.decode("utf-8", "surrogateescape"), stripe_conn.credentials["webhook_secret"]
        ),
    )


@SETTINGS
@given(body=st.binary(max_size=3000))
def test_any_signed_bytes_get_a_4xx_or_2xx(
    client: Client, stripe_conn: Connection, body: bytes
) -> None:
    secret = stripe_conn.credentials["webhook_secret"]
    text = body.decode("utf-8", "replace")
    answer = client.post(
        f"/webhooks/stripe/{stripe_conn.slug}/",
        body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sign(text, secret),
    )
    assert answer.status_code in (200, 400), answer.content


@SETTINGS
@given(
    extra=st.dictionaries(
        st.sampled_from(["id", "type", "created", "data", "object", "x"]), json_values, max_size=4
    )
)
def test_any_signed_json_event_gets_a_4xx_or_2xx(
    client: Client, stripe_conn: Connection, extra: dict[str, Any]
) -> None:
    try:
        body = json.dumps(stripe_like(extra))
    except ValueError:
        return
    answer = post_signed(client, stripe_conn, body)
    assert answer.status_code in (200, 400), answer.content
    for event in WebhookEvent.objects.all():  # whatever was stored reads back
        json.loads(event.raw_body)


@SETTINGS
@given(
    fields=st.dictionaries(
        st.sampled_from(
            [
                "name",
                "slug",
                "cred__api_key",
                "cred__webhook_secret",
                "setting__base_url",
                "setting__rate_limit_per_minute",
                "setting__rate_limit_burst",
                "setting__connect_timeout",
                "setting__read_timeout",
                "setting__max_attempts",
                "setting__max_retry_seconds",
            ]
        ),
        st.text(max_size=60) | st.sampled_from(["nan", "inf", "-1", "1e400", "0", "sk_test_x"]),
    )
)
def test_the_stripe_connection_form_never_crashes(
    admin_client: Client, fields: dict[str, str]
) -> None:
    answer = admin_client.post(
        "/admin/connections/connection/add/?kind=stripe", {"kind": "stripe", **fields}
    )
    assert answer.status_code in (200, 302)


@SETTINGS
@given(
    content=st.binary(max_size=300)
    | st.sampled_from([b"[" * 60000, b"{" * 5000 + b"}" * 5000, b'{"ti": "\\u0000"}', b"\xff\xfe"])
)
def test_any_ionapi_upload_is_a_form_error_or_a_connection(
    admin_client: Client, content: bytes
) -> None:
    answer = admin_client.post(
        "/admin/connections/connection/add/?kind=infor_m3",
        {
            "name": "CloudSuite",
            "slug": "cloudsuite",
            "kind": "infor_m3",
            "credentials_file": SimpleUploadedFile("x.ionapi", content),
            "setting__cono": "100",
        },
    )
    assert answer.status_code in (200, 302)


@SETTINGS
@given(
    field=st.sampled_from(
        ["receipts_per_request", "receipt_batches", "batch_type", "batch_number_base", "nope"]
    ),
    settings_text=st.text(st.characters(exclude_categories=("Cs",)), max_size=200)
    | st.sampled_from(["NaN", "1e400", "\x00", "-1", "0", "[" * 5000, "payout", "PAYOUT"]),
)
def test_the_integration_form_never_crashes(
    admin_client: Client, make_connection: Any, field: str, settings_text: str
) -> None:
    source = Connection.objects.filter(kind="stripe").first() or make_connection("stripe")
    target = Connection.objects.filter(kind="infor_m3").first() or make_connection("infor_m3")
    answer = admin_client.post(
        "/admin/syncs/integration/add/",
        {
            "name": "Payments",
            "slug": "payments",
            "flow": "stripe_m3.payments",
            "source": source.pk,
            "target": target.pk,
            "enabled": "on",
            "schedule_type": "off",
            f"setting__{field}": settings_text,
            "mappings-TOTAL_FORMS": "0",
            "mappings-INITIAL_FORMS": "0",
        },
    )
    assert answer.status_code in (200, 302)
    for integration in Integration.objects.all():  # what was saved is what the flow accepts
        settings = integration.settings
        assert get_flow(integration.flow).clean_settings(settings) == settings
    Integration.objects.all().delete()


READ_TYPES = [
    "payment_intent.succeeded",
    "charge.succeeded",
    "charge.refunded",
    "charge.dispute.created",
    "invoice.paid",
    "payout.paid",
]
READ_FIELDS = [
    "id",
    "amount",
    "amount_received",
    "currency",
    "metadata",
    "payment_intent",
    "latest_charge",
    "refunds",
    "arrival_date",
]
objects = st.dictionaries(st.sampled_from(READ_FIELDS), json_values, max_size=5) | st.builds(
    lambda refunds: {"id": "ch_1", "refunds": refunds},
    st.dictionaries(st.sampled_from(["data", "has_more"]), json_values, max_size=2),
)
times = st.integers(min_value=-(2**70), max_value=2**70) | st.sampled_from(
    [253402300799, 253402300800, 2**39, 10**15, 0, int(time.time())]
)


@SETTINGS
@example(event_type="charge.dispute.created", obj={"id": "dp_1"}, created=253402300800)
@example(event_type="charge.refunded", obj={"id": "ch_1", "refunds": True}, created=0)
@given(event_type=st.sampled_from(READ_TYPES), obj=objects, created=times)
def test_a_signed_event_the_flows_read_is_refused_or_readable_by_them(
    client: Client, stripe_conn: Connection, event_type: str, obj: Any, created: int
) -> None:
    """Far-future times and wrong-typed fields per event type: a 400, or an event whose
    object every flow can read (the flows' own key reader does not raise on it)."""
    from syncs.flows.stripe_events import known_keys

    WebhookEvent.objects.all().delete()
    event = stripe_like({"type": event_type, "data": {"object": obj}, "created": created})
    try:
        body = json.dumps(event)
    except ValueError:
        return
    answer = post_signed(client, stripe_conn, body)
    assert answer.status_code in (200, 400), answer.content
    if answer.status_code == 200:
        stored = WebhookEvent.objects.get()
        known_keys(json.loads(stored.raw_body))
        known_keys(json.loads(stored.raw_body), payouts=True)


amounts = st.integers(min_value=-(10**40), max_value=10**40) | st.sampled_from([2**63, -(2**63)])


@SETTINGS
@example(payload={"currency": "usd", "amount": -(10**30)})  # a dispute seen in the wild
@example(payload={"currency": "jpy", "fee": 10**40})
@given(
    payload=st.fixed_dictionaries(
        {"currency": st.sampled_from(["usd", "jpy", "kwd", "GBP", "xxx", ""])},
        optional={
            "amount": amounts,
            "fee": amounts,
            "amount_received": amounts,
            "extra": json_values,
        },
    )
)
def test_any_amount_reads_as_a_labelled_field(payload: dict[str, Any]) -> None:
    from syncs import display

    rows = display.fields(payload)
    assert all(isinstance(label, str) and isinstance(value, str) for label, value in rows)
