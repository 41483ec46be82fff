"""What may be sold (billing/offers.py), as tables: when a subscription may move to
another price, what a customer holds for good, which purchase is offered and how, and
why the rest is not for sale, in the customer's words.

Pure rules given what the customer holds (`Holdings`, built here in memory), so no
database: none of these tests has the django_db mark, and pytest-django fails any of
them that touches the database. (A renewal overdue makes `offer_check` read the
customer's dunning, so it is in tests/billing/test_offers.py, not here.)
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from accounts.models import User
from billing.offers import (
    Holdings,
    Kind,
    NotAnUpgrade,
    Offer,
    Timing,
    change_timing,
    offer_check,
    refusal_reason,
)
from billing.plans import Interval, Plan
from tests import builders

START = int(datetime(2027, 1, 1, tzinfo=UTC).timestamp())
PERIOD_END = datetime(2027, 1, 31, tzinfo=UTC)
COMP_ENDS = datetime(2027, 3, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _prices_by_lookup_key(settings: Any) -> None:
    settings.STRIPE_PRICE_IDS = {}


def nothing(plan: str = "starter") -> Holdings:
    """Holding `plan` with no subscription, one-off or comp behind it (a comp's plan)."""
    return Holdings(plan=Plan(plan), subscription=None, subscription_plan=None, oneoff_plan=None)


def subscribed(
    plan: str, interval: str = "monthly", status: str = "active", *, stored: str | None = None
) -> Holdings:
    """A subscription to `plan`; `stored`: the user's plan, when it differs (cut in
    dunning)."""
    sub = builders.subscription(plan=plan, interval=interval, status=status, period_start=START)
    return Holdings(
        plan=Plan(stored or plan),
        subscription=sub,
        subscription_plan=Plan(plan),
        oneoff_plan=None,
        subscription_interval=Interval(interval),
    )


def owned(plan: str) -> Holdings:
    return Holdings(
        plan=Plan(plan), subscription=None, subscription_plan=None, oneoff_plan=Plan(plan)
    )


def comp_ending(plan: str) -> Holdings:
    return Holdings(
        plan=Plan(plan),
        subscription=None,
        subscription_plan=None,
        oneoff_plan=None,
        comp_plan=Plan(plan),
        comp_until=COMP_ENDS,
    )


def comp_for_good(plan: str) -> Holdings:
    return Holdings(
        plan=Plan(plan),
        subscription=None,
        subscription_plan=None,
        oneoff_plan=None,
        lasting_comp_plan=Plan(plan),
    )


def debit_processing(plan: str, mode: str) -> Holdings:
    """A bank debit for `plan` still processing (`mode`: subscription or payment)."""
    return Holdings(
        plan=Plan.STARTER,
        subscription=None,
        subscription_plan=None,
        oneoff_plan=None,
        processing=((Plan(plan), mode, 4900, "gbp"),),
    )


@pytest.mark.parametrize(
    ("plan", "interval", "to_plan", "to_interval", "timing"),
    [
        pytest.param("flowkit", "monthly", "flowkit", "monthly", None, id="same-nothing"),
        pytest.param("flowkit", "annual", "flowkit", "annual", None, id="same-annual-nothing"),
        pytest.param("flowkit", "monthly", "launchpack", "monthly", Timing.NOW, id="up-monthly"),
        pytest.param("flowkit", "annual", "launchpack", "annual", Timing.NOW, id="up-annual"),
        pytest.param("flowkit", "monthly", "launchpack", "annual", Timing.NOW, id="up-to-annual"),
        pytest.param("flowkit", "monthly", "flowkit", "annual", Timing.NOW, id="monthly-to-annual"),
        pytest.param(
            "flowkit", "annual", "flowkit", "monthly", Timing.PERIOD_END, id="annual-to-monthly"
        ),
        pytest.param(
            "flowkit",
            "annual",
            "launchpack",
            "monthly",
            Timing.PERIOD_END,
            id="up-but-annual-to-monthly",
        ),
        pytest.param(
            "launchpack", "monthly", "flowkit", "monthly", Timing.PERIOD_END, id="down-monthly"
        ),
        pytest.param(
            "launchpack", "monthly", "flowkit", "annual", Timing.PERIOD_END, id="down-to-annual"
        ),
        pytest.param(
            "launchpack", "annual", "flowkit", "annual", Timing.PERIOD_END, id="down-annual"
        ),
    ],
)
def test_change_timing(
    plan: str, interval: str, to_plan: str, to_interval: str, timing: Timing | None
) -> None:
    assert (
        change_timing(plan=plan, interval=interval, to_plan=to_plan, to_interval=to_interval)
        == timing
    )


@pytest.mark.parametrize(
    ("held", "floor"),
    [
        pytest.param(nothing(), "starter", id="nothing-starter"),
        pytest.param(subscribed("flowkit"), "flowkit", id="subscription"),
        pytest.param(subscribed("flowkit", stored="starter"), "flowkit", id="cut-in-dunning"),
        pytest.param(owned("launchpack"), "launchpack", id="oneoff"),
        pytest.param(comp_for_good("flowkit"), "flowkit", id="comp-for-good"),
        pytest.param(comp_ending("launchpack"), "starter", id="comp-that-ends-not-held"),
        pytest.param(nothing("flowkit"), "flowkit", id="stored-plan-counts"),
    ],
)
def test_what_the_customer_goes_on_holding(held: Holdings, floor: str) -> None:
    assert held.floor == floor


@pytest.mark.parametrize(
    ("held", "plan", "interval", "offer"),
    [
        pytest.param(
            nothing(),
            "flowkit",
            "monthly",
            Offer(Plan.FLOWKIT, Interval.MONTHLY, Kind.CHECKOUT),
            id="starter-buys-flowkit-monthly",
        ),
        pytest.param(
            nothing(),
            "launchpack",
            "oneoff",
            Offer(Plan.LAUNCHPACK, Interval.ONEOFF, Kind.CHECKOUT),
            id="starter-buys-launchpack-once",
        ),
        pytest.param(
            subscribed("flowkit"),
            "launchpack",
            "monthly",
            Offer(Plan.LAUNCHPACK, Interval.MONTHLY, Kind.SWITCH),
            id="subscriber-switches-up",
        ),
        pytest.param(
            subscribed("flowkit"),
            "flowkit",
            "annual",
            Offer(Plan.FLOWKIT, Interval.ANNUAL, Kind.SWITCH),
            id="subscriber-switches-to-annual",
        ),
        pytest.param(
            subscribed("flowkit", "annual"),
            "launchpack",
            "annual",
            Offer(Plan.LAUNCHPACK, Interval.ANNUAL, Kind.SWITCH),
            id="annual-switches-up-annual",
        ),
        pytest.param(
            subscribed("flowkit"),
            "launchpack",
            "oneoff",
            Offer(Plan.LAUNCHPACK, Interval.ONEOFF, Kind.CHECKOUT, ends_subscription_at=PERIOD_END),
            id="higher-oneoff-ends-the-subscription",
        ),
        pytest.param(
            subscribed("flowkit", status="trialing"),
            "launchpack",
            "oneoff",
            Offer(Plan.LAUNCHPACK, Interval.ONEOFF, Kind.CHECKOUT, ends_subscription_at=PERIOD_END),
            id="trial-higher-oneoff",
        ),
        pytest.param(
            owned("flowkit"),
            "launchpack",
            "monthly",
            Offer(Plan.LAUNCHPACK, Interval.MONTHLY, Kind.CHECKOUT),
            id="oneoff-owner-subscribes-higher",
        ),
        pytest.param(
            comp_ending("flowkit"),
            "flowkit",
            "monthly",
            Offer(
                Plan.FLOWKIT,
                Interval.MONTHLY,
                Kind.CHECKOUT,
                comp_plan=Plan.FLOWKIT,
                comp_until=COMP_ENDS,
            ),
            id="comp-that-ends-says-free-until",
        ),
        pytest.param(
            comp_ending("flowkit"),
            "launchpack",
            "monthly",
            Offer(Plan.LAUNCHPACK, Interval.MONTHLY, Kind.CHECKOUT),
            id="above-a-comp-nothing-to-explain",
        ),
        pytest.param(
            debit_processing("flowkit", "subscription"),
            "launchpack",
            "oneoff",
            Offer(Plan.LAUNCHPACK, Interval.ONEOFF, Kind.CHECKOUT),
            id="debit-processing-higher-oneoff",
        ),
    ],
)
def test_what_is_offered(held: Holdings, plan: str, interval: str, offer: Offer) -> None:
    assert offer_check(user=User(), plan=plan, interval=interval, holdings=held) == offer


@pytest.mark.parametrize(
    ("held", "plan", "interval", "refusal"),
    [
        pytest.param(nothing(), "starter", "monthly", "is our free plan", id="starter-never-sold"),
        pytest.param(
            subscribed("flowkit"),
            "flowkit",
            "monthly",
            "You already have FlowKit: buying it again",
            id="same-subscription",
        ),
        pytest.param(
            subscribed("launchpack"),
            "flowkit",
            "annual",
            "You already have LaunchPack, which includes everything in FlowKit",
            id="lower-than-the-subscription",
        ),
        pytest.param(
            subscribed("flowkit"),
            "flowkit",
            "oneoff",
            "You already have FlowKit",
            id="same-plan-once-while-subscribed",
        ),
        pytest.param(
            subscribed("flowkit", "annual"),
            "launchpack",
            "monthly",
            "You pay yearly for FlowKit: switch to LaunchPack yearly",
            id="annual-to-monthly-up",
        ),
        pytest.param(
            subscribed("flowkit", status="trialing"),
            "launchpack",
            "monthly",
            "Your free trial is still running",
            id="trial-switch-up",
        ),
        pytest.param(
            subscribed("flowkit", status="trialing"),
            "flowkit",
            "annual",
            "Your free trial is still running",
            id="trial-to-annual",
        ),
        pytest.param(
            owned("flowkit"),
            "flowkit",
            "monthly",
            "You already have FlowKit",
            id="owned-for-good",
        ),
        pytest.param(
            comp_for_good("launchpack"),
            "launchpack",
            "annual",
            "You already have LaunchPack",
            id="comp-for-good",
        ),
        pytest.param(
            debit_processing("flowkit", "payment"),
            "flowkit",
            "oneoff",
            "Your £49.00 payment for FlowKit by bank debit is processing",
            id="debit-processing-same-plan",
        ),
        pytest.param(
            debit_processing("flowkit", "subscription"),
            "launchpack",
            "monthly",
            "payment for FlowKit by bank debit is processing",
            id="debit-processing-second-subscription",
        ),
    ],
)
def test_what_is_refused(held: Holdings, plan: str, interval: str, refusal: str) -> None:
    with pytest.raises(NotAnUpgrade) as refused:
        offer_check(user=User(), plan=plan, interval=interval, holdings=held)

    assert refusal in str(refused.value)


@pytest.mark.parametrize(
    ("held", "plan", "interval", "reason"),
    [
        pytest.param(nothing(), Plan.FLOWKIT, Interval.MONTHLY, None, id="nothing-held"),
        pytest.param(
            subscribed("flowkit"),
            Plan.FLOWKIT,
            Interval.MONTHLY,
            "You pay monthly for FlowKit: this is your plan.",
            id="this-is-your-plan",
        ),
        pytest.param(
            subscribed("flowkit", status="trialing"),
            Plan.FLOWKIT,
            Interval.MONTHLY,
            "You are trying FlowKit free, then pay monthly: this is your plan.",
            id="trialing",
        ),
        pytest.param(
            subscribed("flowkit"),
            Plan.FLOWKIT,
            Interval.ONEOFF,
            "You pay monthly for FlowKit. While you subscribe, only a higher plan can be "
            "bought once.",
            id="same-plan-once",
        ),
        pytest.param(
            subscribed("flowkit"),
            Plan.FLOWKIT,
            Interval.ANNUAL,
            None,
            id="annual-is-offered-not-refused",
        ),
        pytest.param(
            subscribed("flowkit", "annual"),
            Plan.FLOWKIT,
            Interval.ANNUAL,
            "You pay yearly for FlowKit: this is your plan.",
            id="annual-your-plan",
        ),
        pytest.param(
            subscribed("flowkit", "annual"),
            Plan.FLOWKIT,
            Interval.MONTHLY,
            "You pay yearly for FlowKit: monthly FlowKit can start when your paid year ends "
            "(from the billing page).",
            id="annual-to-monthly-waits",
        ),
        pytest.param(
            subscribed("launchpack", status="past_due", stored="starter"),
            Plan.FLOWKIT,
            Interval.MONTHLY,
            "Your LaunchPack subscription has a payment overdue: pay it from the billing page "
            "to have LaunchPack again.",
            id="cut-in-dunning-pay-it",
        ),
        pytest.param(
            subscribed("flowkit", status="past_due", stored="starter"),
            Plan.LAUNCHPACK,
            Interval.MONTHLY,
            None,
            id="cut-in-dunning-higher-not-blamed",
        ),
        pytest.param(
            subscribed("flowkit", status="past_due"),
            Plan.FLOWKIT,
            Interval.MONTHLY,
            "You pay monthly for FlowKit: this is your plan.",
            id="in-grace-still-your-plan",
        ),
        pytest.param(
            owned("flowkit"),
            Plan.FLOWKIT,
            Interval.ANNUAL,
            "You own FlowKit for good: there is nothing more to pay.",
            id="owned-for-good",
        ),
        pytest.param(
            owned("launchpack"),
            Plan.FLOWKIT,
            Interval.MONTHLY,
            "Your LaunchPack includes everything in FlowKit.",
            id="lower-than-owned",
        ),
        pytest.param(
            comp_for_good("launchpack"),
            Plan.LAUNCHPACK,
            Interval.MONTHLY,
            "LaunchPack is complimentary on your account, for good: there is nothing to pay.",
            id="comp-for-good",
        ),
        pytest.param(
            comp_for_good("launchpack"),
            Plan.FLOWKIT,
            Interval.MONTHLY,
            "Your LaunchPack includes everything in FlowKit.",
            id="lower-than-comp-for-good",
        ),
        pytest.param(
            comp_ending("launchpack"),
            Plan.FLOWKIT,
            Interval.MONTHLY,
            None,
            id="comp-that-ends-refuses-nothing",
        ),
    ],
)
def test_refusal_reason(held: Holdings, plan: Plan, interval: Interval, reason: str | None) -> None:
    assert refusal_reason(held=held, plan=plan, interval=interval) == reason
