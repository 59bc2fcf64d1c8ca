"""Declared flow settings: a flow reads only what it declares, the integration form is built
from the declaration and checks each value, and a typo is an error, never a silent default."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from syncs.flows import FLOWS
from syncs.flows.base import OVERLAP_SETTING, WORKERS_SETTING, Flow
from syncs.models import Integration, SyncRun
from syncs.runner import Runner
from tests.syncs.test_finance_admin import _reviewer

ROOT = Path(__file__).resolve().parents[3]


def _setting_reads(tree: ast.AST) -> list[tuple[str, str]]:
    """(class name, setting name) of every ``self.setting("…")`` in a module's classes."""
    reads = []
    for cls in [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]:
        for node in ast.walk(cls):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "setting"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "self"
            ):
                (arg,) = node.args
                assert isinstance(arg, ast.Constant), f"{cls.name}: a setting named at run time"
                reads.append((cls.name, arg.value))
    return reads


@pytest.mark.parametrize("flow", sorted(FLOWS.values(), key=lambda f: f.key), ids=lambda f: f.key)
def test_every_setting_a_flow_reads_is_declared_and_it_reads_no_raw_option(
    flow: type[Flow],
) -> None:
    modules = {importlib.import_module(c.__module__) for c in flow.__mro__ if c.__module__}
    names = {s.name for s in (*flow.declared_settings(), *flow.part_settings)}
    read = set()
    for module in modules:
        if not module.__name__.startswith("syncs.flows.") or module.__name__.endswith(".base"):
            continue
        source = inspect.getsource(module)
        assert "self.options" not in source, f"{module.__name__} reads an undeclared option"
        tree = ast.parse(source)
        ours = {c.__name__ for c in flow.__mro__}
        read |= {name for cls, name in _setting_reads(tree) if cls in ours}
    assert read <= names, f"{flow.key} reads undeclared settings: {sorted(read - names)}"
    unused = {s.name for s in flow.settings} - read
    assert not unused, f"{flow.key} declares settings it never reads: {sorted(unused)}"


def test_the_engine_reads_only_the_settings_it_declares_for_every_flow() -> None:
    source = (ROOT / "syncs" / "runner.py").read_text()
    assert (
        ".settings or {}).get(" not in source
        and "integration.settings"
        not in source.split("options = {**(integration.settings or {})")[1]
    ), "the runner reads an integration setting past the flow's declaration"
    engine = {OVERLAP_SETTING.name, WORKERS_SETTING.name}
    tree = ast.parse(source)
    read = {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "setting"
        and isinstance(node.func.value, ast.Attribute)
        and node.func.value.attr == "flow"
    }
    assert read and read <= engine


@pytest.mark.parametrize("flow", sorted(FLOWS.values(), key=lambda f: f.key), ids=lambda f: f.key)
def test_each_declared_setting_has_help_one_name_and_a_default_its_own_check_accepts(
    flow: type[Flow],
) -> None:
    specs = flow.declared_settings()
    assert len({s.name for s in specs}) == len(specs)
    for spec in specs:
        assert spec.help and spec.label and not spec.secret
        if spec.default not in (None, "", {}, []):
            assert spec.clean(spec.default) == spec.default, spec.name
    assert flow(options={}).options == {}


def test_a_typo_and_a_wrong_kind_of_value_are_refused_with_the_nearest_name(
    make_connection: Any,
) -> None:
    integration = Integration(
        name="Invoices",
        slug="invoices",
        flow="m3_stripe.invoices",
        source=make_connection("infor_m3"),
        target=make_connection("stripe"),
        settings={"customer_form": "C100", "workers": "two"},
    )
    with pytest.raises(ValidationError) as caught:
        integration.full_clean()
    text = " ".join(caught.value.message_dict["settings"])
    assert "“customer_form” is not a setting here. Did you mean “customer_from”?" in text
    assert "Workers per run (workers): “two” is not a whole number." in text
    integration.settings = {"customer_from": "C100", "workers": "2"}
    integration.full_clean()
    assert integration.settings == {"customer_from": "C100", "workers": 2}


@pytest.fixture
def payments(make_connection: Any) -> Integration:
    integration = Integration(
        name="Payments",
        slug="payments",
        flow="stripe_m3.payments",
        source=make_connection("stripe"),
        target=make_connection("infor_m3"),
    )
    integration.full_clean()
    integration.save()
    return integration


def _form(integration: Integration, **settings: str) -> dict[str, Any]:
    return {
        "name": integration.name,
        "slug": integration.slug,
        "flow": integration.flow,
        "source": integration.source_id,
        "target": integration.target_id,
        "enabled": "on",
        "schedule_type": "off",
        "run_at": "06:00",
        "period_close_day": "3",
        "mappings-TOTAL_FORMS": "0",
        "mappings-INITIAL_FORMS": "0",
        **{f"setting__{k}": v for k, v in settings.items()},
    }


def test_the_integration_page_has_a_field_per_setting_and_checks_each_one(
    admin_client: Client, payments: Integration
) -> None:
    url = f"/admin/syncs/integration/{payments.pk}/change/"
    page = admin_client.get(url).content.decode()
    for spec in FLOWS["stripe_m3.payments"].declared_settings():
        assert f'name="setting__{spec.name}"' in page and spec.label in page
    assert 'name="settings"' not in page  # no raw JSON box

    refused = admin_client.post(url, _form(payments, receipts_per_request="two"))
    assert refused.status_code == 200
    assert "“two” is not a whole number." in refused.content.decode()
    payments.refresh_from_db()
    assert payments.settings == {}

    saved = admin_client.post(
        url, _form(payments, receipts_per_request="10", receipt_batches="payout")
    )
    assert saved.status_code == 302
    payments.refresh_from_db()
    assert payments.settings == {"receipts_per_request": 10, "receipt_batches": "payout"}
    shown = admin_client.get(url).content.decode()
    assert 'value="10"' in shown and '<option value="payout" selected>' in shown


def test_a_new_integration_shows_its_flows_settings_once_the_flow_is_chosen(
    admin_client: Client, payments: Integration
) -> None:
    blank = admin_client.get("/admin/syncs/integration/add/").content.decode()
    assert "Choose the flow and save: its settings appear here." in blank
    chosen = admin_client.get("/admin/syncs/integration/add/?flow=m3_wise.quotes").content
    assert b'name="setting__overdue_days"' in chosen


def test_a_reviewer_who_may_only_look_reads_the_settings_with_their_defaults(
    payments: Integration,
) -> None:
    payments.settings = {"receipt_batches": "payout"}
    payments.save()
    client = Client()
    client.force_login(_reviewer())
    page = client.get(f"/admin/syncs/integration/{payments.pk}/change/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "<th>Receipt batches</th><td>payout</td>" in text
    assert "<th>Receipt batches per request</th><td>25 (default)</td>" in text


def test_settings_saved_before_they_were_checked_fail_the_run_in_plain_words(
    integration: Integration,
) -> None:
    Integration.objects.filter(pk=integration.pk).update(settings={"rowz": []})
    run = Runner(Integration.objects.get(pk=integration.pk), trigger="manual").run()
    assert run.status == SyncRun.Status.FAILED
    assert "settings of Test payments are not valid" in run.error_summary
    assert "“rowz” is not a setting here. Did you mean “rows”?" in run.error_summary


def test_a_saved_setting_no_flow_reads_is_named_before_the_save_that_removes_it(
    admin_client: Client, payments: Integration
) -> None:
    Integration.objects.filter(pk=payments.pk).update(
        settings={"receipt_batches": "payout", "old_fee_account": "6570"}
    )
    url = f"/admin/syncs/integration/{payments.pk}/change/"
    page = admin_client.get(url).content.decode()
    assert "Saved settings this flow does not read (old_fee_account = 6570)" in page
    assert admin_client.post(url, _form(payments, receipt_batches="payout")).status_code == 302
    payments.refresh_from_db()
    assert payments.settings == {"receipt_batches": "payout"}
    assert "does not read" not in admin_client.get(url).content.decode()
    reviewer = Client()
    reviewer.force_login(_reviewer())
    Integration.objects.filter(pk=payments.pk).update(settings={"old_fee_account": "6570"})
    looked = reviewer.get(url).content.decode()
    assert "Saved settings this flow does not read: old_fee_account = 6570." in looked
