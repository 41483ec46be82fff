"""reconcile_plans reads a batch of users its own cheaper way (billing.entitlements:
`facts_load_between`, the items cut down in SQL on PostgreSQL, the last plan change
compared in SQL) and fixes a batch's drift at once (`plans_refresh`). Each shortcut must
decide exactly what the full facts decide."""

from __future__ import annotations

import copy
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from djstripe.models import Subscription

from accounts.models import User
from billing.entitlements import (
    _stripe_id,
    facts_load,
    facts_load_between,
    last_changes_drifted_between,
    plan_decide,
    plans_refresh,
)
from billing.models import PlanChange
from billing.subscriptions import items_sold
from tests.billing import stripe_fakes as sf

pytestmark = pytest.mark.django_db


def _run(*args: str) -> str:
    out = StringIO()
    call_command("reconcile_plans", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def _sold(sub: dict[str, Any]) -> tuple[list[tuple[str, str]], list[str]]:
    sold, unknown = items_sold(sub)
    return [(s.plan, s.interval) for s in sold], unknown


def _shapes(full: dict[str, Any], catalog: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The subscription's Stripe JSON in the shapes Stripe sends that the reading must
    survive: an add-on before the plan, an unexpanded price, an unknown price alone, no
    items, expanded customer and latest invoice, a past_due status."""
    item = full["items"]["data"][0]
    addon = copy.deepcopy(item)
    addon["id"] = "si_addon"
    addon["price"] = {**item["price"], "id": "price_addon", "lookup_key": "sms_pack"}
    unexpanded = copy.deepcopy(item)
    unexpanded["price"] = item["price"]["id"]
    upgrade = copy.deepcopy(item)
    upgrade["price"] = catalog["launchpack_monthly"]
    shapes = []
    for items, extra in (
        ([addon, item], {}),
        ([unexpanded], {}),
        ([addon], {}),
        ([], {}),
        ([item, upgrade], {"status": "past_due", "latest_invoice": {"id": "in_x"}}),
        ([item], {"customer": {"id": full["customer"], "object": "customer"}}),
    ):
        shape = copy.deepcopy(full)
        shape["items"] = {**full["items"], "data": items}
        shape.update(extra)
        shapes.append(shape)
    return shapes


def test_a_batch_reads_every_shape_of_subscription_as_its_json(
    customer, deliver, fake_stripe, catalog, payer
):
    sub = sf.subscription(cus=payer, prc=catalog["flowkit_monthly"])
    fake_stripe.add(sub)
    assert deliver(sf.event("customer.subscription.created", sub)).status_code == 200
    row = Subscription.objects.get(id=sub["id"])

    for shape in _shapes(row.stripe_data, catalog):
        Subscription.objects.filter(pk=row.pk).update(stripe_data=shape)

        (read,) = facts_load_between(customer.pk - 1, customer.pk)[customer.pk].subscriptions

        assert _sold(read) == _sold(shape)
        assert read["status"] == shape["status"]
        assert _stripe_id(read["customer"]) == _stripe_id(shape["customer"])
        assert _stripe_id(read.get("latest_invoice")) == _stripe_id(shape.get("latest_invoice"))
        # And the batch's facts decide what one user's facts decide.
        single = facts_load([customer.pk])[customer.pk]
        assert plan_decide(facts=single, current="starter") == plan_decide(
            facts=facts_load_between(customer.pk - 1, customer.pk)[customer.pk],
            current="starter",
        )


def _user(email: str, *, changes: int) -> User:
    user = User.objects.create_user(email, None)
    for i in range(changes):
        PlanChange.objects.create(
            user=user,
            old_plan="starter",
            new_plan="starter",
            source=PlanChange.Source.STAFF,
            reason="test",
            created_at=timezone.now() - timedelta(days=10 - i),
        )
    return user


def test_every_kind_of_last_change_drift_is_found_and_fixed():
    right = _user("right@example.com", changes=2)
    newest = PlanChange.objects.filter(user=right).latest("created_at").created_at
    User.objects.filter(pk=right.pk).update(last_plan_change_at=newest)
    never_copied = _user("never-copied@example.com", changes=1)
    stale = _user("stale@example.com", changes=2)
    User.objects.filter(pk=stale.pk).update(last_plan_change_at=newest - timedelta(days=5))
    no_changes = _user("no-changes@example.com", changes=0)
    User.objects.filter(pk=no_changes.pk).update(last_plan_change_at=newest)

    drifted = last_changes_drifted_between(0, no_changes.pk)

    assert set(drifted) == {never_copied.pk, stale.pk, no_changes.pk}
    assert drifted[no_changes.pk].stored == newest
    assert drifted[no_changes.pk].computed is None
    assert drifted[never_copied.pk].stored is None
    out = _run()
    assert "3 drifted, fixed 3" in out
    assert "right@example.com" not in out
    assert "0 drifted" in _run()
    stale.refresh_from_db()
    assert (
        stale.last_plan_change_at
        == PlanChange.objects.filter(user=stale).latest("created_at").created_at
    )


def test_a_user_without_facts_but_a_copied_status_drifts():
    user = _user("copied@example.com", changes=0)
    User.objects.filter(pk=user.pk).update(billing_status="active", stripe_customer_id="cus_x")

    out = _run("--dry-run")

    assert "billing_status stored 'active', computed ''" in out
    assert "stripe_customer_id stored 'cus_x', computed ''" in out


def test_a_batch_of_drift_is_fixed_in_one_transaction_through_the_one_writer():
    users = [User.objects.create_user(f"u{i}@example.com", None) for i in range(4)]
    User.objects.filter(pk__in=[u.pk for u in users]).update(plan="flowkit")

    with CaptureQueriesContext(connection) as ctx:
        changed = plans_refresh(
            user_ids=[u.pk for u in users], source=PlanChange.Source.RECONCILE, notify=False
        )

    assert changed == 4
    assert set(User.objects.values_list("plan", flat=True)) == {"starter"}
    assert PlanChange.objects.filter(source="reconcile").count() == 4
    sql = [q["sql"] for q in ctx.captured_queries]
    # One lock for the batch (in pk order), not one per user.
    locks = [s for s in sql if "FOR UPDATE" in s]
    assert len(locks) == (1 if connection.features.has_select_for_update else 0)


def test_drift_is_pooled_across_batches_and_every_drifted_user_is_fixed(monkeypatch):
    from billing.management.commands import reconcile_plans

    monkeypatch.setattr(reconcile_plans, "BATCH", 2)
    users = [User.objects.create_user(f"pool{i}@example.com", None) for i in range(6)]
    # One drifted user in each of the three batches of two.
    drifted = [u.pk for u in users[::2]]
    User.objects.filter(pk__in=drifted).update(plan="flowkit")
    calls: list[list[int]] = []
    real = reconcile_plans.plans_refresh

    def counted(*, user_ids: list[int], **kwargs: Any) -> int:
        calls.append(list(user_ids))
        return real(user_ids=user_ids, **kwargs)

    monkeypatch.setattr(reconcile_plans, "plans_refresh", counted)

    assert "6 users checked, 3 drifted, fixed 3." in _run()

    # Fixed once BATCH drifted users were found, then the rest at the end: two fixes,
    # not one a batch.
    assert calls == [drifted[:2], drifted[2:]]
    assert set(User.objects.values_list("plan", flat=True)) == {"starter"}
    assert "0 drifted" in _run("--dry-run")
    # A dry run fixes nothing, however much drift it finds.
    User.objects.filter(pk__in=drifted).update(plan="flowkit")
    calls.clear()
    assert "3 drifted, would fix 3." in _run("--dry-run")
    assert calls == []
