"""Which plan changes tell the customer "Your SmartFlow plan has ended"."""

from __future__ import annotations

import pytest

from accounts.models import User
from billing.models import PlanChange
from onboarding.models import OnboardingMessage
from onboarding.receivers import plan_changed_receive

pytestmark = pytest.mark.django_db


def _ended(source: str) -> bool:
    user = User.objects.create_user(f"{source}@example.com")
    change = PlanChange.objects.create(
        user=user, old_plan="flowkit", new_plan="starter", source=source
    )
    plan_changed_receive(plan_change=change, notify=None)
    return OnboardingMessage.objects.filter(
        user=user, template=OnboardingMessage.Template.PLAN_ENDED
    ).exists()


@pytest.mark.parametrize("source", ["checkout", "subscription", "invoice"])
def test_a_paid_plan_ended_by_stripes_data_is_told(source):
    # "checkout": a late checkout.session.completed recomputed the plan after the grace
    # of a failed renewal ran out (seen in tests/e2e/test_dunning_journeys.py).
    assert _ended(source)


@pytest.mark.parametrize("source", ["staff", "refund", "reconcile"])
def test_staff_refunds_and_reconciles_explain_themselves(source):
    assert not _ended(source)
