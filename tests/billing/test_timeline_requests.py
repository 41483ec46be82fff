"""The customer's own requests in the staff timeline (billing/timeline.py): a
cancellation at the period end with the reason given, its withdrawal, the end, and a
change planned for the renewal."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import stripe
from djstripe.models import Price, SubscriptionSchedule

from billing.stripe_api import api_kwargs
from billing.timeline import payment_timeline
from tests.billing import stripe_fakes as sf

pytestmark = pytest.mark.django_db


def _at(event: dict, offset: int) -> dict:
    event["created"] = sf.NOW + offset
    return event


def _requests(user) -> list[str]:
    return [e.what for e in payment_timeline(user) if e.kind in ("request", "subscription")]


def test_a_cancellation_with_its_reason_then_its_withdrawal_are_in_the_timeline(
    deliver, fake_stripe, catalog, payer, customer
):
    sub = sf.subscription(cus=payer, prc=catalog["flowkit_monthly"])
    fake_stripe.add(sub)
    deliver(_at(sf.event("customer.subscription.created", sub), 0))
    ends = sub["items"]["data"][0]["current_period_end"]
    sub.update(
        cancel_at_period_end=True,
        cancel_at=ends,
        cancellation_details={
            "comment": None,
            "feedback": "too_expensive",
            "reason": "cancellation_requested",
        },
    )
    previous = {"cancel_at_period_end": False, "cancel_at": None}
    deliver(_at(sf.event("customer.subscription.updated", sub, previous=previous), 10))
    sub.update(
        cancel_at_period_end=False,
        cancel_at=None,
        cancellation_details={"comment": None, "feedback": None, "reason": None},
    )
    previous = {"cancel_at_period_end": True, "cancel_at": ends}
    deliver(_at(sf.event("customer.subscription.updated", sub, previous=previous), 20))

    day = f"{datetime.fromtimestamp(ends, tz=UTC):%Y-%m-%d}"
    assert _requests(customer) == [
        f"Cancellation requested: the subscription ends {day}; reason given: too expensive",
        "Cancellation withdrawn: the subscription renews",
    ]


def test_an_immediate_cancellation_is_in_the_timeline_as_the_end(
    deliver, fake_stripe, catalog, payer, customer
):
    sub = sf.subscription(cus=payer, prc=catalog["flowkit_monthly"])
    fake_stripe.add(sub)
    deliver(_at(sf.event("customer.subscription.created", sub), 0))
    sub.update(
        status="canceled",
        canceled_at=sf.NOW + 5,
        ended_at=sf.NOW + 5,
        cancellation_details={"comment": None, "feedback": "unused", "reason": None},
    )
    sub["cancellation_details"]["reason"] = "cancellation_requested"
    deliver(_at(sf.event("customer.subscription.deleted", sub), 5))

    assert _requests(customer) == [
        f"Subscription {sub['id']} ended (cancellation requested); reason given: unused"
    ]


def test_a_downgrade_planned_for_the_renewal_is_in_the_timeline(
    fake_stripe, catalog, payer, customer
):
    sub = sf.subscription(cus=payer, prc=catalog["launchpack_monthly"])
    fake_stripe.add(sub)
    schedule = stripe.SubscriptionSchedule.create(from_subscription=sub["id"], **api_kwargs())
    current = schedule["phases"][0]
    schedule = stripe.SubscriptionSchedule.modify(
        schedule["id"],
        end_behavior="release",
        phases=[
            {
                "items": [{"price": catalog["launchpack_monthly"]["id"], "quantity": 1}],
                "start_date": current["start_date"],
                "end_date": current["end_date"],
            },
            {
                "items": [{"price": catalog["flowkit_monthly"]["id"], "quantity": 1}],
                "duration": {"interval": "month", "interval_count": 1},
            },
        ],
        **api_kwargs(),
    )
    SubscriptionSchedule.sync_from_stripe_data(schedule)
    Price.sync_from_stripe_data(catalog["flowkit_monthly"])  # as stripe_catalog syncs it

    day = f"{datetime.fromtimestamp(current['end_date'], tz=UTC):%Y-%m-%d}"
    assert _requests(customer) == [f"Change to FlowKit monthly planned from {day}"]
