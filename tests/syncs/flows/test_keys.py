"""The posting ledger's keys: one module builds and reads them, each flow declares what it
posts and what of other flows it reads, and every thing read is posted by some flow."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

from syncs.flows import FLOWS, Flow, keys
from syncs.flows.keys import Thing

THINGS = {name: v for name, v in vars(keys).items() if isinstance(v, Thing)}


def test_every_thing_a_flow_reads_is_posted_by_some_flow() -> None:
    posted = {t for flow in FLOWS.values() for t in flow.posts}
    reads = {t for flow in FLOWS.values() for t in flow.reads}
    assert reads and reads <= posted, {t.prefix for t in reads - posted}


@pytest.mark.parametrize("flow", sorted(FLOWS.values(), key=lambda f: f.key), ids=lambda f: f.key)
def test_a_flow_posts_its_things_in_its_own_ledger_and_names_only_what_it_declares(
    flow: type,
) -> None:
    assert all(t.target == flow.ledger_target for t in flow.posts)
    declared = {t for t in (*flow.posts, *flow.reads)}
    modules = {c.__module__ for c in flow.__mro__ if c.__module__.startswith("syncs.flows.")}
    source = "".join(inspect.getsource(importlib.import_module(m)) for m in modules)
    named = {thing for name, thing in THINGS.items() if re.search(rf"\b{name}\b", source)}
    if "movement_key" in source:  # Stripe's movements, by kind
        named |= {keys.PAYMENT, keys.REFUND, keys.PAYOUT}
    assert named <= declared | {keys.DISPUTE}, {t.prefix for t in named - declared}
    if re.search(r"ledger_key=(?!None)", source):  # it posts through the ledger: it says what
        assert flow.posts
    # …and builds the key of what it posts in one place, from the prepared record
    assert (flow.ledger_key is not Flow.ledger_key) == bool(flow.posts)


def test_no_flow_writes_a_key_by_hand() -> None:
    prefixes = "|".join(re.escape(t.prefix) for t in THINGS.values())
    by_hand = re.compile(rf'f"({prefixes}):')
    folder = Path(importlib.import_module("syncs.flows").__file__).parent
    offenders = [
        p.name for p in folder.glob("*.py") if p.name != "keys.py" and by_hand.search(p.read_text())
    ]
    assert offenders == []


@pytest.mark.parametrize(
    ("thing", "values", "key"),
    [  # stored keys: their shape never changes
        (keys.M3_INVOICE, ("100", "2026", "42"), "invoice:100:2026:42"),
        (keys.WISE_QUOTE, ("D", "S1", "A:1", "2026", "EUR", "10.00", "20261203"), None),
        (keys.WISE_PAID, ("100:S1:INV-1:2026", "7"), "wise-paid:100:S1:INV-1:2026:7"),
        (keys.WISE_PAID, ("", "7"), "wise-paid::7"),
        (keys.WISE_RECIPIENT, ("S1", "USD", "abc#2"), "wise-recipient:S1:USD:abc#2"),
        (keys.AP_INVOICE, ("S1", "A-1", "2026", "10.00", "EUR"), None),
    ],
)
def test_a_key_is_read_back_as_it_was_built(
    thing: Thing, values: tuple[str, ...], key: str | None
) -> None:
    built = thing.build(*values)
    if key is not None:
        assert built == key
    if ":" not in "".join(values[1:] if thing.open_first else values[:-1]):
        assert tuple(thing.parse(built).values()) == values
    assert thing.owns(built) and not keys.IFS_NOTE.owns(built)
    with pytest.raises(ValueError):
        thing.parse("other:" + built)


def test_a_quote_names_the_invoice_a_payment_is_for() -> None:
    quote = keys.WISE_QUOTE.build("100", "S1", "INV-1", "2026", "EUR", "10.00", "20261203")
    assert keys.quoted_invoice(quote) == "100:S1:INV-1:2026"
    paid = keys.WISE_PAID.build(keys.quoted_invoice(quote), "7")
    assert keys.WISE_PAID.parse(paid) == {"invoice": "100:S1:INV-1:2026", "transfer": "7"}
    assert keys.WISE_QUOTE.under("100", "S1") == "wise-quote:100:S1:"
