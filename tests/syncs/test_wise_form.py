"""Wise's recipient form filled from a supplier's values (``syncs.flows.wise_form``), on answers
shaped as Wise's account-requirements reference shows them."""

from __future__ import annotations

from typing import Any

from syncs.flows import wise_form


def field(key: str, *, required: bool = True, **more: Any) -> dict[str, Any]:
    return {
        "name": more.get("name", key),
        "group": [
            {
                "key": key,
                "name": more.get("name", key),
                "type": "text",
                "refreshRequirementsOnChange": key == "address.country",
                "required": required,
                "minLength": more.get("min_length"),
                "maxLength": more.get("max_length"),
                "validationRegexp": more.get("pattern"),
                "valuesAllowed": more.get("allowed"),
            }
        ],
    }


LEGAL = field(
    "legalType", allowed=[{"key": "PRIVATE", "name": "Person"}, {"key": "BUSINESS", "name": "B"}]
)
ADDRESS = [
    field("address.country", allowed=[{"key": "US", "name": "US"}, {"key": "GB", "name": "GB"}]),
    field("address.city", min_length=1, max_length=255),
    field("address.firstLine", pattern="^.{1,255}$"),
    field("address.postCode", max_length=32),
]
USD = [
    {
        "type": "aba",
        "title": "ACH",
        "fields": [
            LEGAL,
            field("abartn", pattern="^[0-9]{9}$"),
            field("accountNumber"),
            field("accountType", allowed=[{"key": "CHECKING", "name": "Checking"}]),
            *ADDRESS,
        ],
    },
    {
        "type": "swift_code",
        "title": "SWIFT",
        "fields": [LEGAL, field("swiftCode"), field("accountNumber"), *ADDRESS],
    },
]
SUPPLIER = {
    "accountholdername": "Hudson Tooling Inc",
    "legaltype": "BUSINESS",
    "swiftcode": "CHASUS33XXX",
    "accountnumber": "8310946522",
    "address.country": "us",
    "address.state": "NY",
}


def test_the_closest_type_names_only_what_one_fix_needs() -> None:
    rtype, _, problems = wise_form.build(wise_form.parse(USD), SUPPLIER)
    assert rtype is not None and rtype.type == "swift_code"  # ACH lacks bank fields too
    assert [p.field.plain for p in problems] == ["city", "address line 1", "post code"]
    assert all(p.missing for p in problems)


def test_a_complete_supplier_fills_the_first_type_it_completes() -> None:
    full = {**SUPPLIER, "address.city": "New York", "address.firstline": "350 Fifth Avenue"}
    full["address.postcode"] = "10118"
    rtype, body, problems = wise_form.build(wise_form.parse(USD), full)
    assert problems == [] and rtype is not None and rtype.type == "swift_code"
    assert body["details"]["address"] == {
        "country": "US",  # Wise's spelling of the allowed value
        "state": "NY",  # sent with its country: Wise asks for it once the country is set
        "city": "New York",
        "firstLine": "350 Fifth Avenue",
        "postCode": "10118",
    }
    assert body["details"]["swiftCode"] == "CHASUS33XXX" and "accountholdername" not in body


def test_values_wise_would_refuse_are_named_with_why() -> None:
    bad = {
        **SUPPLIER,
        "address.country": "XX",
        "address.city": "New York",
        "address.firstline": "1 Road",
        "address.postcode": "1" * 40,
    }
    _, _, problems = wise_form.build(wise_form.parse(USD), bad)
    told = {p.field.plain: p.detail for p in problems}
    assert "not one Wise accepts" in told["country"]
    assert "longer than the 32 characters" in told["post code"]


def test_the_holder_name_goes_beside_the_details_and_keys_ignore_case() -> None:
    form = [
        {
            "type": "iban",
            "fields": [
                field("accountHolderName", min_length=2),
                LEGAL,
                field("IBAN"),
                field("BIC", required=False),
            ],
        }
    ]
    values = {
        "accountholdername": "Nord GmbH",
        "legaltype": "business",
        "iban": "DE89370400440532013000",
    }
    _, body, problems = wise_form.build(wise_form.parse(form), values)
    assert problems == []
    assert body == {
        "type": "iban",
        "accountHolderName": "Nord GmbH",
        "details": {"legalType": "BUSINESS", "IBAN": "DE89370400440532013000"},
    }


def test_an_optional_address_is_sent_whole_or_not_at_all() -> None:
    optional = [field(f["group"][0]["key"], required=False) for f in ADDRESS]
    form = wise_form.parse([{"type": "iban", "fields": [LEGAL, field("IBAN"), *optional]}])
    only_country = {"legaltype": "BUSINESS", "iban": "X", "address.country": "DE"}
    _, body, problems = wise_form.build(form, only_country)
    assert problems == [] and "address" not in body["details"]
    whole = {**only_country, "address.city": "Bremen", "address.firstline": "Hafen 1"}
    _, body, _ = wise_form.build(form, whole)
    assert body["details"]["address"] == {"country": "DE", "city": "Bremen", "firstLine": "Hafen 1"}
    assert wise_form.address_keys(form) == []  # an optional address is no part of the identity
    assert wise_form.address_keys(wise_form.parse(USD)) == [
        "address.country",
        "address.city",
        "address.firstline",
        "address.postcode",
    ]


def test_unknown_fields_and_unreadable_patterns_do_not_break_the_form() -> None:
    form = [
        {"type": "odd", "fields": [{"name": "x"}, "junk", field("x", pattern="[z-a]")]},
        {"type": "email", "fields": [field("email", name="E-mail")]},
    ]
    types = wise_form.parse(form)
    rtype, _, problems = wise_form.build(types, {"x": "anything"})
    assert rtype is not None and rtype.type == "odd" and problems == []
    _, _, missing = wise_form.build(types[1:], {})
    assert [p.field.plain for p in missing] == ["email address"]
