"""Demo set-up: connections to the running sandbox, the M3 ↔ Stripe, IFS Cloud ↔ Stripe,
CloudSuite → Wise and Stampli → CloudSuite integrations, their GL mappings and schedules, and
the Stripe and Wise webhook endpoints.  Safe to run on every start."""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta
from typing import Any

import requests
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule

from connections.models import Connection
from syncs.flows import kinds
from syncs.flows.stripe_m3_payments import StripePaymentsToM3
from syncs.models import FieldMapping, Integration

logger = logging.getLogger(__name__)

# GBP receipts are left unmapped on purpose: the demo's first GBP payment waits in the review
# queue with its fix ("Add the GL account mapping for stripe_receipts:GBP": account 1931).
GL_MAPPINGS = [
    ("gl_account", "stripe_receipts:EUR", "1930", "Stripe clearing, EUR"),
    ("gl_account", "stripe_receipts:SEK", "1932", "Stripe clearing, SEK"),
    # A charge code, not an account: CloudSuite books the charge to the account its charge
    # code is set up with (in the sandbox tenant, the code is the fee account itself).
    ("charge_code", "stripe_fees", "6570", "Stripe card fees"),
]
WISE_MAPPINGS = [
    ("gl_account", "wise_ap:EUR", "2440", "Accounts payable (EUR invoices)"),
    ("gl_account", "wise_ap:SEK", "2440", "Accounts payable (SEK invoices)"),
    ("gl_account", "wise_bank:EUR", "1940", "Wise EUR balance"),
    ("gl_account", "wise_ap:USD", "2440", "Accounts payable (USD invoices)"),
]
# Where the demo tenant keeps a supplier's address lines (GetBasicData has none of its own).
DEMO_ADDRESS_FIELDS = {
    "address.firstLine": "CFI2",
    "address.city": "CFI1",
    "address.postCode": "CFI4",
}
# Simulators whose connection is made from what the simulator says (/_sandbox/connection).
SANDBOX_CONNECTIONS = {
    "ifs": ("ifs-sandbox", "IFS Cloud (sandbox)"),
    "wise": ("wise-sandbox", "Wise (sandbox)"),
    "stampli": ("stampli-sandbox", "Stampli (sandbox SFTP)"),
    "cin7": ("cin7-sandbox", "Cin7 Core (sandbox)"),
}
STAMPLI_MAPPINGS = {
    "stampli-invoices-to-cloudsuite": [
        ("gl_account", "6000", "6110", "Office supplies"),
        ("gl_account", "6500", "6540", "IT services"),
    ],
    "stampli-payments-to-cloudsuite": [
        ("gl_account", "stampli_ap:EUR", "2440", "Accounts payable"),
        ("gl_account", "stampli_ap:SEK", "2440", "Accounts payable"),
        ("gl_account", "stampli_bank:EUR", "1930", "Bank EUR"),
        ("gl_account", "stampli_bank:SEK", "1932", "Bank SEK"),
    ],
}
INTEGRATIONS = [
    (
        "cloudsuite-customers-to-stripe",
        "CloudSuite customers → Stripe",
        "m3_stripe.customers",
        "m3",
        "stripe",
        1,
        0,
    ),
    (
        "cloudsuite-invoices-to-stripe",
        "CloudSuite invoices → Stripe",
        "m3_stripe.invoices",
        "m3",
        "stripe",
        1,
        40,
    ),
    (
        "stripe-payments-to-cloudsuite",
        "Stripe payments → CloudSuite receipts",
        "stripe_m3.payments",
        "stripe",
        "m3",
        5,
        90,
    ),
    (
        "ifs-customers-to-stripe",
        "IFS Cloud customers → Stripe",
        "ifs_stripe.customers",
        "ifs",
        "stripe",
        1,
        10,
    ),
    (
        "ifs-orders-to-stripe",
        "IFS Cloud customer orders → Stripe customers",
        "ifs_stripe.orders",
        "ifs",
        "stripe",
        1,
        30,
    ),
    (
        "ifs-invoices-to-stripe",
        "IFS Cloud invoices → Stripe drafts",
        "ifs_stripe.invoices",
        "ifs",
        "stripe",
        1,
        50,
    ),
    (
        "stripe-outcomes-to-ifs",
        "Stripe payments and disputes → IFS Cloud notes",
        "stripe_ifs.notes",
        "stripe",
        "ifs",
        5,
        100,
    ),
    (
        "cloudsuite-suppliers-to-wise",
        "CloudSuite suppliers → Wise recipients",
        "m3_wise.recipients",
        "m3",
        "wise",
        1,
        20,
    ),
    (
        "cloudsuite-invoices-to-wise-quotes",
        "CloudSuite supplier invoices → Wise quotes",
        "m3_wise.quotes",
        "m3",
        "wise",
        2,
        60,
    ),
    (
        "stampli-invoices-to-cloudsuite",
        "Stampli approved invoices → CloudSuite AP",
        "stampli_m3.invoices",
        "stampli",
        "m3",
        1,
        25,
    ),
    (
        "stampli-payments-to-cloudsuite",
        "Stampli payments → CloudSuite",
        "stampli_m3.payments",
        "stampli",
        "m3",
        1,
        45,
    ),
    (
        "cloudsuite-suppliers-to-cin7",
        "CloudSuite suppliers → Cin7 Core",
        "m3_cin7.suppliers",
        "m3",
        "cin7",
        2,
        35,
    ),
    (
        "cloudsuite-purchases-to-cin7",
        "CloudSuite purchase orders → Cin7 Core purchases",
        "m3_cin7.purchases",
        "m3",
        "cin7",
        2,
        75,
    ),
    (
        "cloudsuite-chart-vs-cin7",
        "CloudSuite chart ↔ Cin7 Core chart (review, run by hand)",
        "m3_cin7.accounts",
        "m3",
        "cin7",
        0,
        0,
    ),
    (
        "wise-transfers-to-cloudsuite",
        "Wise transfers → CloudSuite payment journals",
        "wise_m3.payments",
        "wise",
        "m3",
        5,
        120,
    ),
]


def _connection(slug: str, **fields: Any) -> Connection:
    connection = Connection.objects.filter(slug=slug).first() or Connection(slug=slug)
    for key, value in fields.items():
        setattr(connection, key, value)
    connection.full_clean()
    connection.save()
    return connection


def demo_seed(*, urls: dict[str, str], web_url: str) -> dict[str, Any]:
    """Create or refresh everything the demo needs; returns the integrations' slugs.

    ``urls`` are the running simulators' base URLs by name (``m3``, ``stripe``).
    """
    m3_url, stripe_url = urls["m3"], urls["stripe"]
    ionapi = requests.get(f"{m3_url}/_sandbox/ionapi", timeout=10).json()
    with transaction.atomic():
        m3 = _connection(
            "cloudsuite-sandbox",
            name="CloudSuite (sandbox)",
            kind="infor_m3",
            credentials=ionapi,
            settings={"cono": 100, "divi": "AAA"},
        )
        existing = Connection.objects.filter(slug="stripe-sandbox").first()
        secret = ((existing.credentials or {}).get("webhook_secret") if existing else None) or (
            "whsec_" + secrets.token_urlsafe(24)
        )
        # The sandbox's newest key (a rotation from the admin survives a restart of the demo),
        # rotated every 30 days with an hour's grace.
        account = requests.get(f"{stripe_url}/_sandbox/connection", timeout=10).json()
        stripe = _connection(
            "stripe-sandbox",
            name="Stripe (sandbox)",
            kind="stripe",
            credentials={"api_key": account["credentials"]["api_key"], "webhook_secret": secret},
            settings={
                **(existing.settings if existing else {}),
                **account["settings"],
                "rotate_every_days": 30,
                "rotation_grace_minutes": 60,
            },
        )
        sides = {"m3": m3, "stripe": stripe}
        for side, (slug, label) in SANDBOX_CONNECTIONS.items():
            if side not in urls:
                continue
            values = requests.get(f"{urls[side]}/_sandbox/connection", timeout=10).json()
            sides[side] = _connection(
                slug,
                name=label,
                kind=values["kind"],
                credentials=values["credentials"],
                settings=values["settings"],
            )
        created = []
        for slug, name, flow, source, target, minutes, delay in INTEGRATIONS:
            if source not in sides or target not in sides:
                continue
            integration, new = Integration.objects.get_or_create(
                slug=slug,
                defaults={
                    "name": name,
                    "flow": flow,
                    "source": sides[source],
                    "target": sides[target],
                    "schedule_type": (
                        Integration.ScheduleType.INTERVAL
                        if minutes
                        else Integration.ScheduleType.OFF
                    ),
                    "interval_minutes": minutes or None,
                },
            )
            if new:
                created.append((integration, delay))
                if flow == "m3_wise.recipients":  # the US supplier's address lines (seed.py)
                    integration.settings = {"recipient_fields": DEMO_ADDRESS_FIELDS}
                    integration.save(update_fields=["settings"])
                if flow == "m3_cin7.purchases":  # the demo's items post to Cin7's expenses
                    integration.settings = {"default_account": "429"}
                    integration.save(update_fields=["settings"])
                    FieldMapping.objects.get_or_create(  # VAT code 25 is Cin7's 25 % rule
                        integration=integration,
                        kind=kinds.TAX_RULE.name,
                        source_value="25",
                        defaults={"target_value": "Tax on Purchases"},
                    )
        mapped = [("stripe-payments-to-cloudsuite", GL_MAPPINGS)]
        if "wise" in sides:
            mapped.append(("wise-transfers-to-cloudsuite", WISE_MAPPINGS))
        if "stampli" in sides:
            mapped += list(STAMPLI_MAPPINGS.items())
        for slug, mappings in mapped:
            payments = Integration.objects.get(slug=slug)
            for kind, source_value, target_value, note in mappings:
                FieldMapping.objects.get_or_create(
                    integration=payments,
                    kind=kind,
                    source_value=source_value,
                    defaults={"target_value": target_value, "note": note},
                )
    # Stagger first runs: customers first, then invoices, then the first payments poll.
    for integration, delay in created:
        Schedule.objects.filter(name=f"integration:{integration.pk}").update(
            next_run=timezone.now() + timedelta(seconds=delay)
        )
    requests.post(
        f"{stripe_url}/_sandbox/webhook_endpoints",
        timeout=10,
        json={
            "url": f"{web_url}{reverse('webhook', args=[stripe.kind, stripe.slug])}",
            "secret": secret,
            "enabled_events": list(StripePaymentsToM3.webhook_events),
        },
    )
    if "wise" in sides:
        wise = sides["wise"]
        requests.post(
            f"{urls['wise']}/_sandbox/webhook_endpoints",
            timeout=10,
            json={"url": f"{web_url}{reverse('webhook', args=[wise.kind, wise.slug])}"},
        )
    return {"integrations": [i[0] for i in INTEGRATIONS if i[3] in sides and i[4] in sides]}
