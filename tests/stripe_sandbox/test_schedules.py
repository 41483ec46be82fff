"""Subscription schedules as Stripe runs them, through stripe-python: a downgrade at the
period end (the current phase until `current_period_end`, then the lower price), the
renewal that bills it, release, cancel, and Stripe's refusal to change the cancellation
of a subscription a schedule manages."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
import stripe
from django.core.management import call_command

from devtools.stripe_sandbox import store
from tests.stripe_sandbox.helpers import checkout_create, pay
from tests.stripe_sandbox.stripe_schema import validate

APRIL_1 = int(datetime(2027, 4, 1, tzinfo=UTC).timestamp())
MAY_1 = int(datetime(2027, 5, 1, tzinfo=UTC).timestamp())
JUNE_1 = int(datetime(2027, 6, 1, tzinfo=UTC).timestamp())


@pytest.fixture
def clock(monkeypatch) -> SimpleNamespace:
    clock = SimpleNamespace(now=APRIL_1)
    monkeypatch.setattr(store, "time", SimpleNamespace(time=lambda: clock.now))
    return clock


@pytest.fixture
def launchpack(clock, client, prices, stripe_customer) -> Any:
    """A LaunchPack monthly subscription paid on 1 April 2027."""
    session = checkout_create(prices["launchpack_monthly"], stripe_customer.id)
    pay(client, session.id)
    return stripe.Subscription.retrieve(stripe.checkout.Session.retrieve(session.id).subscription)


def _downgrade(sub: Any, price: Any) -> Any:
    schedule = stripe.SubscriptionSchedule.create(from_subscription=sub.id)
    phase = schedule.phases[0]
    return stripe.SubscriptionSchedule.modify(
        schedule.id,
        end_behavior="release",
        proration_behavior="none",
        phases=[
            {
                "items": [{"price": phase["items"][0].price, "quantity": 1}],
                "start_date": phase.start_date,
                "end_date": phase.end_date,
            },
            {
                "items": [{"price": price.id, "quantity": 1}],
                "duration": {"interval": "month", "interval_count": 1},
            },
        ],
    )


def _advance(days: int) -> None:
    call_command("stripe_sandbox", "advance", "--days", str(days), stdout=io.StringIO())


def _events(kind: str) -> list[dict[str, Any]]:
    return [e for e in store.all_of("event") if e["type"] == kind]


def test_from_subscription_takes_over_the_current_period(launchpack):
    schedule = stripe.SubscriptionSchedule.create(from_subscription=launchpack.id)

    assert schedule.status == "active"
    assert schedule.end_behavior == "release"
    assert (schedule.phases[0].start_date, schedule.phases[0].end_date) == (APRIL_1, MAY_1)
    assert schedule.current_phase.end_date == MAY_1
    assert stripe.Subscription.retrieve(launchpack.id).schedule == schedule.id
    assert [e["type"] for e in store.all_of("event")][:2] == [
        "customer.subscription.updated",
        "subscription_schedule.created",
    ]
    assert [
        str(v) for v in validate(store.render(store.get(schedule.id, "subscription_schedule")))
    ] == []


def test_a_downgrade_waits_for_the_period_end_and_the_renewal_bills_the_lower_price(
    launchpack, prices, clock
):
    _downgrade(launchpack, prices["flowkit_monthly"])
    clock.now = APRIL_1 + 10 * 86400
    assert stripe.Subscription.retrieve(launchpack.id)["items"].data[0].price.id == (
        prices["launchpack_monthly"].id
    )

    _advance(21)  # to 2 May

    sub = stripe.Subscription.retrieve(launchpack.id, expand=["latest_invoice"])
    assert sub["items"].data[0].price.id == prices["flowkit_monthly"].id
    assert sub.latest_invoice.amount_paid == 4900
    assert sub["items"].data[0].current_period_start == MAY_1
    schedule = stripe.SubscriptionSchedule.retrieve(sub.schedule)
    assert schedule.current_phase.start_date == MAY_1
    assert _events("subscription_schedule.updated")


def test_the_schedule_completes_and_releases_after_its_last_phase(launchpack, prices, clock):
    schedule = _downgrade(launchpack, prices["flowkit_monthly"])
    clock.now = APRIL_1 + 86400
    _advance(62)  # past 1 June

    schedule = stripe.SubscriptionSchedule.retrieve(schedule.id)
    assert (schedule.status, schedule.released_subscription) == ("completed", launchpack.id)
    sub = stripe.Subscription.retrieve(launchpack.id)
    assert sub.schedule is None
    assert sub.status == "active"
    assert sub["items"].data[0].price.id == prices["flowkit_monthly"].id
    assert _events("subscription_schedule.completed")


def test_release_keeps_the_current_price(launchpack, prices):
    schedule = _downgrade(launchpack, prices["flowkit_monthly"])

    released = stripe.SubscriptionSchedule.release(schedule.id)

    assert (released.status, released.subscription) == ("released", None)
    assert released.released_subscription == launchpack.id
    sub = stripe.Subscription.retrieve(launchpack.id)
    assert sub.schedule is None
    _advance(31)
    sub = stripe.Subscription.retrieve(launchpack.id)
    assert sub["items"].data[0].price.id == prices["launchpack_monthly"].id
    assert _events("subscription_schedule.released")


def test_cancel_at_period_end_is_refused_while_a_schedule_manages_it(launchpack, prices):
    schedule = _downgrade(launchpack, prices["flowkit_monthly"])

    with pytest.raises(stripe.InvalidRequestError) as refused:
        stripe.Subscription.modify(launchpack.id, cancel_at_period_end=True)

    assert f"managed by the subscription schedule `{schedule.id}`" in str(refused.value)
    assert stripe.Subscription.retrieve(launchpack.id).cancel_at_period_end is False


def test_cancelling_the_schedule_cancels_the_subscription(launchpack, prices):
    schedule = _downgrade(launchpack, prices["flowkit_monthly"])

    canceled = stripe.SubscriptionSchedule.cancel(schedule.id)

    assert canceled.status == "canceled"
    assert stripe.Subscription.retrieve(launchpack.id).status == "canceled"
    assert _events("subscription_schedule.canceled")


def test_iterations_are_refused_on_this_api_version(launchpack, prices):
    schedule = stripe.SubscriptionSchedule.create(from_subscription=launchpack.id)

    with pytest.raises(stripe.InvalidRequestError):
        stripe.SubscriptionSchedule.modify(
            schedule.id,
            phases=[{"items": [{"price": prices["flowkit_monthly"].id}], "iterations": 1}],
        )


def test_a_second_schedule_for_the_same_subscription_is_refused(launchpack):
    stripe.SubscriptionSchedule.create(from_subscription=launchpack.id)

    with pytest.raises(stripe.InvalidRequestError, match="already attached"):
        stripe.SubscriptionSchedule.create(from_subscription=launchpack.id)
