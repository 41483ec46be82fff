from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from accounts.models import User
from billing.entitlements import plan_compute
from billing.models import PlanChange, PlanOverride
from billing.overrides import OverrideForbidden, OverrideInvalid, override_grant, override_revoke
from billing.signals import plan_changed
from billing.tasks import overrides_sweep

pytestmark = pytest.mark.django_db


def _grant(customer, staff_user, **kwargs):
    values = {
        "plan": "launchpack",
        "reason": "Beta tester",
        "expires_at": timezone.now() + timedelta(days=30),
        "notify": False,
    } | kwargs
    return override_grant(user=customer, actor=staff_user, **values)


def _expire(override: PlanOverride) -> None:
    PlanOverride.objects.filter(pk=override.pk).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )


def test_grant_with_reason_changes_plan_and_records_who_and_why(customer, staff_user):
    override = _grant(customer, staff_user)

    customer.refresh_from_db()
    assert customer.plan == "launchpack"
    assert customer.has_feature("ai_concierge")
    assert (override.granted_by, override.reason) == (staff_user, "Beta tester")
    change = PlanChange.objects.get(user=customer)
    assert (change.old_plan, change.new_plan, change.source) == ("starter", "launchpack", "staff")
    assert (change.actor, change.reason) == (staff_user, "Beta tester")


@pytest.mark.parametrize("reason", ["", "   "])
def test_grant_without_reason_is_refused_and_writes_nothing(customer, staff_user, reason):
    with pytest.raises(OverrideInvalid, match="reason"):
        _grant(customer, staff_user, reason=reason)

    customer.refresh_from_db()
    assert customer.plan == "starter"
    assert not PlanOverride.objects.exists()
    assert not PlanChange.objects.exists()


def test_grant_with_notify_asks_to_tell_the_customer(customer, staff_user):
    sent = []

    def receiver(sender, plan_change, notify, **kwargs):
        sent.append(notify)

    plan_changed.connect(receiver)
    try:
        _grant(customer, staff_user, notify=True)
    finally:
        plan_changed.disconnect(receiver)

    assert sent == [True]


def test_grant_with_expiry_enqueues_a_sweep_for_that_moment(customer, staff_user):
    override = _grant(customer, staff_user)

    task = DBTaskResult.objects.get()
    assert task.task_path == "billing.tasks.overrides_sweep"
    assert task.run_after == override.expires_at


def test_an_expired_override_no_longer_counts(customer, staff_user):
    override = _grant(customer, staff_user)

    later = override.expires_at + timedelta(seconds=1)

    assert plan_compute(customer).plan == "launchpack"
    assert plan_compute(customer, now=later).plan == "starter"


def test_the_sweep_moves_the_stored_plan_back_after_expiry(customer, staff_user):
    override = _grant(customer, staff_user)
    _expire(override)

    assert overrides_sweep.call() == 1
    assert overrides_sweep.call() == 0  # safe to run twice

    customer.refresh_from_db()
    assert customer.plan == "starter"
    change = PlanChange.objects.filter(user=customer).first()
    assert (change.old_plan, change.new_plan, change.source) == (
        "launchpack",
        "starter",
        "reconcile",
    )
    assert "override expired" in change.reason


def test_reconcile_plans_also_moves_the_plan_back_after_expiry(customer, staff_user):
    override = _grant(customer, staff_user)
    _expire(override)

    call_command("reconcile_plans", stdout=StringIO(), stderr=StringIO())

    customer.refresh_from_db()
    assert customer.plan == "starter"
    assert PlanChange.objects.filter(user=customer, source="reconcile").count() == 1


def test_revoke_recomputes_the_plan_and_records_it(customer, staff_user):
    override = _grant(customer, staff_user)

    change = override_revoke(override=override, actor=staff_user)

    customer.refresh_from_db()
    override.refresh_from_db()
    assert customer.plan == "starter"
    assert (override.revoked_by, override.revoked_at is not None) == (staff_user, True)
    assert (change.new_plan, change.source, change.actor) == ("starter", "staff", staff_user)
    assert "revoked" in change.reason
    assert override_revoke(override=override, actor=staff_user) is None


def test_revoking_a_lower_comp_keeps_the_higher_grant(customer, staff_user):
    customer.plan_overrides.create(plan="launchpack", reason="x", granted_by=staff_user)
    lower = _grant(customer, staff_user, plan="flowkit", expires_at=None)

    override_revoke(override=lower, actor=staff_user)

    customer.refresh_from_db()
    assert customer.plan == "launchpack"


def test_staff_member_cannot_grant_to_themselves(roles):
    support = User.objects.create_user("s@smartflowsystems.com", is_staff=True)
    support.groups.add(Group.objects.get(name="Support"))

    with pytest.raises(OverrideForbidden):
        _grant(support, support)

    support.refresh_from_db()
    assert support.plan == "starter"
    assert not PlanOverride.objects.exists()


def test_staff_member_cannot_extend_or_revoke_a_colleagues_comp(roles, staff_user):
    support = User.objects.create_user("s@smartflowsystems.com", is_staff=True)
    colleague = User.objects.create_user("c@smartflowsystems.com", is_staff=True)
    override = _grant(colleague, staff_user)  # a superuser may

    with pytest.raises(OverrideForbidden):
        _grant(colleague, support, expires_at=None)
    with pytest.raises(OverrideForbidden):
        override_revoke(override=override, actor=support)

    override.refresh_from_db()
    assert override.revoked_at is None
    assert PlanOverride.objects.filter(user=colleague).count() == 1
    assert list(PlanChange.objects.values_list("actor", flat=True)) == [staff_user.pk]
