"""Stripe does not promise the order of its webhooks, and redelivers some. Whatever
order the four events of a subscription checkout arrive in, with or without repeats,
the user ends on the plan Stripe's current state gives, changed once and welcomed once.

The payloads are snapshots from before the end state (an incomplete subscription, then
an active one on the other plan), so a receiver that trusted a payload over Stripe's
current state would end on a plan that depends on the order.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import transaction
from djstripe.models import Subscription
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.models import User
from billing.models import PlanChange
from onboarding.models import OnboardingMessage
from tests.billing import stripe_fakes as sf

pytestmark = pytest.mark.django_db

EVENT_TYPES = (
    "customer.subscription.created",
    "customer.subscription.updated",
    "invoice.paid",
    "checkout.session.completed",
)
# A subscription entitles to its plan when it is live (docs/billing-rules.md).
LIVE = {"active", "trialing"}


@st.composite
def arrivals(draw: st.DrawFn) -> list[int]:
    """Indexes into EVENT_TYPES: each event at least once, in any order, some twice."""
    sequence = list(draw(st.permutations(range(len(EVENT_TYPES)))))
    for repeat in draw(st.lists(st.sampled_from(range(len(EVENT_TYPES))), max_size=3)):
        sequence.insert(draw(st.integers(0, len(sequence))), repeat)
    return sequence


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    sequence=arrivals(),
    plan=st.sampled_from(["flowkit", "launchpack"]),
    status=st.sampled_from(["active", "trialing", "canceled"]),
)
def test_every_order_of_the_checkout_events_gives_the_same_plan(
    deliver: Any, fake_stripe: sf.FakeStripe, catalog: dict[str, Any], sequence, plan, status
):
    other = "launchpack" if plan == "flowkit" else "flowkit"
    # Each example in its own transaction, rolled back: no state leaks between them.
    with transaction.atomic():
        user = User.objects.create_user(f"order-{sf.new_id('u')}@example.com")
        cus = sf.customer(email=user.email, metadata={"djstripe_subscriber": str(user.pk)})
        # Stripe's state now: the plan and status the events have led to.
        sub = sf.subscription(cus=cus, prc=catalog[f"{plan}_monthly"], status=status)
        snapshot = sf.subscription(
            cus=cus, prc=catalog[f"{other}_monthly"], status="incomplete", id=sub["id"]
        )
        session = sf.session(cus=cus, mode="subscription", user_id=user.pk, sub=sub)
        invoice = sf.invoice(cus=cus, sub=sub)
        fake_stripe.add(cus, sub, session, invoice)
        events = [
            sf.event(EVENT_TYPES[0], snapshot),
            sf.event(EVENT_TYPES[1], {**snapshot, "status": "active"}, previous={"status": "x"}),
            sf.event(EVENT_TYPES[2], invoice),
            sf.event(EVENT_TYPES[3], session),
        ]

        statuses = [deliver(events[index]).status_code for index in sequence]

        assert statuses == [200] * len(sequence)
        expected = plan if status in LIVE else "starter"
        user.refresh_from_db()
        assert user.plan == expected
        changes = list(PlanChange.objects.filter(user=user).values_list("old_plan", "new_plan"))
        welcomes = OnboardingMessage.objects.filter(user=user, channel="email").count()
        if expected == "starter":
            assert (changes, welcomes) == ([], 0)
        else:
            # Straight to the plan, never through the one the snapshots show.
            assert (changes, welcomes) == ([("starter", expected)], 1)
        assert Subscription.objects.get(id=sub["id"]).stripe_data["status"] == status
        transaction.set_rollback(True)
