"""A demo CloudSuite tenant: customers, a chart of accounts and open AR invoices, suppliers with
bank details and open supplier invoices (deterministic)."""

from __future__ import annotations

import logging
import random
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from connections.sandbox.m3 import M3State

logger = logging.getLogger(__name__)

CUSTOMERS = [
    ("C1001", "Acme Stores Ltd", "EUR", "Dublin", "IE"),
    ("C1002", "Birch & Sons", "GBP", "Leeds", "GB"),
    ("C1003", "Cedar Retail AB", "SEK", "Uppsala", "SE"),
    ("C1004", "Delta Foods GmbH", "EUR", "Bremen", "DE"),
    ("C1005", "Elm Street Bakery", "EUR", "Cork", "IE"),
    ("C1006", "Fjord Marine AS", "EUR", "Bergen", "NO"),
    ("C1007", "Grove Hardware", "GBP", "Bristol", "GB"),
    ("C1008", "Harbour Logistics BV", "EUR", "Rotterdam", "NL"),
    ("C1009", "Iris Pharma SA", "EUR", "Lyon", "FR"),
    ("C1010", "Juniper Hotels", "EUR", "Porto", "PT"),
]
ACCOUNTS = [
    ("1510", "Accounts receivable"),
    ("1930", "Bank EUR (Stripe clearing)"),
    ("1931", "Bank GBP (Stripe clearing)"),
    ("1932", "Bank SEK (Stripe clearing)"),
    ("3010", "Sales"),
    ("2611", "Output VAT"),
    ("6570", "Bank and card fees"),
    ("2440", "Accounts payable"),
    ("1940", "Wise EUR balance"),
    ("4010", "Purchases"),
    ("6110", "Office supplies"),
    ("6540", "IT services"),
]
# What the tenant's AP rules code a supplier's invoices to, by its accounting template (REGR).
AP_RULES = {"OFFICE": "6110", "IT": "6540"}
SUPPLIER_TEMPLATES = {"S2001": "OFFICE", "S2002": "OFFICE", "S2003": "IT", "S2004": "OFFICE"}
# Suppliers with their bank details in user-defined fields SFI1 (IBAN) and SFI2 (BIC), as the
# connector's default bank_fields setting reads them; one has no bank details at all.
SUPPLIERS = [
    ("S2001", "Kaffeerösterei Nord GmbH", "EUR", "DE", "DE89370400440532013000", "COBADEFFXXX"),
    ("S2002", "Atelier Lumière SARL", "EUR", "FR", "FR1420041010050500013M02606", "PSSTFRPPXXX"),
    ("S2003", "Noord Verpakking BV", "EUR", "NL", "NL91ABNA0417164300", "ABNANL2AXXX"),
    ("S2004", "Skärgårds Frakt AB", "SEK", "SE", "SE4550000000058398257466", "ESSESESSXXX"),
    ("S2005", "Cash Only Cleaning", "EUR", "IE", "", ""),
]
# A US supplier: Wise needs an address for USD recipients.  CRS620MI GetBasicData carries the
# country (CSCD) and state (ECAR) but no address lines, so this tenant keeps line 1, city and
# ZIP code in user-defined fields (the demo's recipients integration reads them there through
# its recipient_fields setting); the account number is in SFI4, the BIC in SFI2.
US_SUPPLIERS = [
    (
        "S2006",
        "Hudson Tooling Inc",
        "8310946522",
        "CHASUS33XXX",
        "350 Fifth Avenue",
        "New York",
        "10118",
        "NY",
    ),
]
VAT = {"EUR": Decimal("0.21"), "GBP": Decimal("0.20"), "SEK": Decimal("0.25")}


def seed_tenant(state: M3State, *, invoices: int = 24, customers: int = 0, seed: int = 7) -> None:
    """Fill an empty tenant (does nothing when it already has customers).

    ``customers`` beyond the ten named ones are generated (for benchmarks).
    """
    if state.customers:
        return
    rng = random.Random(seed)
    people = list(CUSTOMERS)
    currencies = ["EUR", "EUR", "GBP", "SEK"]
    people += [
        (f"C{2000 + n}", f"Customer {2000 + n}", currencies[n % 4], "Town", "IE")
        for n in range(max(0, customers - len(CUSTOMERS)))
    ]
    for cuno, name, currency, town, country in people:
        slug = name.split()[0].lower().strip("&")
        state.put_customer(
            cuno,
            CUNM=name,
            CUCD=currency,
            TOWN=town,
            CSCD=country,
            CUA1=f"{rng.randint(1, 99)} Market Street",
            MAIL=f"accounts@{slug}.example",
            PHNO=f"+353 1 {rng.randint(1000000, 9999999)}",
        )
    for aitm, name in ACCOUNTS:
        state.put_account(aitm, name)
    today = date.today()
    for n in range(invoices):
        cuno, _, currency, _, _ = people[n % len(people)]
        net = Decimal(rng.randrange(12000, 480000)) / 100
        vat = (net * VAT[currency]).quantize(Decimal("0.01"))
        issued = today - timedelta(days=rng.randint(0, 20))
        state.add_invoice(
            cuno,
            str(70001 + n),
            net + vat,
            currency,
            vat=vat,
            ivdt=issued.strftime("%Y%m%d"),
            dudt=(issued + timedelta(days=30)).strftime("%Y%m%d"),
        )
    state.ap_rules.update(AP_RULES)
    for suno, name, account, bic, line1, city, zip_code, us_state in US_SUPPLIERS:
        state.put_supplier(
            suno,
            SUNM=name,
            CUCD="USD",
            CSCD="US",
            ECAR=us_state,
            SFI2=bic,
            SFI4=account,
            CFI2=line1,
            CFI1=city,
            CFI4=zip_code,
        )
        state.add_supplier_invoice(
            suno,
            f"INV-{suno}-1",
            Decimal("1840.00"),
            "USD",
            ivdt=(today - timedelta(days=10)).strftime("%Y%m%d"),
            due=(today + timedelta(days=4)).strftime("%Y%m%d"),
        )
    for n, (suno, name, currency, country, iban, bic) in enumerate(SUPPLIERS, start=1):
        state.put_supplier(
            suno,
            SUNM=name,
            CUCD=currency,
            CSCD=country,
            SFI1=iban,
            SFI2=bic,
            REGR=SUPPLIER_TEMPLATES.get(suno, ""),
        )
        for k in range(2):
            state.add_supplier_invoice(
                suno,
                f"INV-{suno}-{k + 1}",
                Decimal(rng.randrange(15000, 250000)) / 100,
                currency,
                ivdt=(today - timedelta(days=20 - n)).strftime("%Y%m%d"),
                due=(today + timedelta(days=2 + 5 * k + n)).strftime("%Y%m%d"),
            )
    # Purchase orders (and, for most, the supplier's invoice) for the Cin7 integration.
    for n, (suno, _, currency, _, _, _) in enumerate(SUPPLIERS[:4], start=1):
        puno = f"PO{4000 + n}"
        state.add_purchase_order(
            puno,
            suno,
            currency,
            pudt=(today - timedelta(days=n)).strftime("%Y%m%d"),
            lines=[
                {
                    "ITNO": "PAPER-A4",
                    "ITDS": "Copy paper A4",
                    "ORQA": "20",
                    "PUPR": "4.50",
                    "VTCD": "25",
                },
                {"ITNO": "SERVICE", "ITDS": "Delivery", "ORQA": "1", "PUPR": "35.00", "VTCD": "25"},
            ],
        )
        if n < 4:
            state.add_supplier_invoice(
                suno,
                f"PINV-{4000 + n}",
                "156.25",  # 125.00 net and 25 % VAT
                currency,
                due=(today + timedelta(days=20)).strftime("%Y%m%d"),
                ivdt=(today - timedelta(days=n)).strftime("%Y%m%d"),
                PUNO=puno,
            )
    logger.info(
        "Seeded the demo tenant: %d customers, %d invoices, %d suppliers",
        len(people),
        invoices,
        len(SUPPLIERS),
    )
