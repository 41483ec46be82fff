from __future__ import annotations

import pytest
from django.db import transaction

from billing.entitlements import plan_compute, plan_refresh
from billing.models import OneOffPurchase, PlanChange, PlanOverride
from billing.signals import plan_changed
from onboarding.models import OnboardingMessage

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent():
    calls = []

    def receiver(sender, plan_change, notify, **kwargs):
        calls.append((plan_change.new_plan, notify))

    plan_changed.connect(receiver)
    yield calls
    plan_changed.disconnect(receiver)


def _buy(user, plan, session="cs_test_1"):
    return OneOffPurchase.objects.create(
        user=user, plan=plan, checkout_session_id=session, amount=100, currency="gbp"
    )


def test_nothing_changed_writes_nothing_and_signals_nothing(customer, sent):
    assert plan_refresh(user=customer, source="reconcile") is None
    assert not PlanChange.objects.exists()
    assert sent == []


def test_a_paid_activation_is_signalled_and_welcomed(customer, sent):
    _buy(customer, "flowkit")

    change = plan_refresh(user=customer, source="checkout", stripe_event_id="evt_1")

    assert (change.old_plan, change.new_plan, change.stripe_event_id) == (
        "starter",
        "flowkit",
        "evt_1",
    )
    # notify: the caller's word (none here); billing.messages decides the welcome.
    assert sent == [("flowkit", None)]
    assert set(_told(customer)) == {("welcome", "flowkit")}


def test_a_refund_back_to_starter_is_told_by_the_refund_alone(customer, sent):
    purchase = _buy(customer, "flowkit")
    plan_refresh(user=customer, source="checkout")
    purchase.delete()

    plan_refresh(user=customer, source="refund")

    assert sent == [("flowkit", None), ("starter", None)]
    assert set(_told(customer)) == {("welcome", "flowkit")}


def _told(user) -> list[tuple[str, str]]:
    return list(OnboardingMessage.objects.filter(user=user).values_list("template", "plan"))


def test_the_highest_grant_wins_and_says_why(customer):
    _buy(customer, "flowkit")
    PlanOverride.objects.create(user=customer, plan="launchpack", reason="Beta partner")

    decision = plan_compute(customer)

    assert decision.plan == "launchpack"
    assert "Beta partner" in decision.why


def test_a_rolled_back_refresh_leaves_no_trace(customer, sent):
    _buy(customer, "launchpack")

    with pytest.raises(RuntimeError), transaction.atomic():  # noqa: PT012 (the raise is the failure that rolls the block back)
        plan_refresh(user=customer, source="checkout")
        raise RuntimeError("the webhook failed after the plan change")

    customer.refresh_from_db()
    assert customer.plan == "starter"
    assert not PlanChange.objects.exists()
