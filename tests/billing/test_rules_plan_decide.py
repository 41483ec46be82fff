"""Which plan the facts entitle to (billing.entitlements.plan_decide), as tables: each
plan under each subscription status, trials, one-offs, comps, the grace of a failed
renewal at its edges, and prices that sell no known plan.

Pure rule, so no database: the facts are built in memory (unsaved purchases and
overrides), none of these tests has the django_db mark, and pytest-django fails any of
them that touches the database.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from billing.entitlements import Facts, plan_decide
from billing.models import OneOffPurchase, PlanOverride
from tests import builders

NOW = datetime(2027, 1, 15, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)
DAY = timedelta(days=1)
GRACE = timedelta(days=7)


@pytest.fixture(autouse=True)
def _plain_settings(settings: Any) -> None:
    """Prices known by their lookup keys only; a grace of 7 days."""
    settings.STRIPE_PRICE_IDS = {}
    settings.BILLING_PAST_DUE_GRACE_DAYS = 7


def sub(
    plan: str = "flowkit", status: str = "active", *, id: str = "sub_1", **values: Any
) -> dict[str, Any]:
    return builders.subscription(plan=plan, status=status, id=id, **values)


def unknown_price(id: str = "price_addon") -> dict[str, Any]:
    return builders.plan_price(lookup_key=None, id=id)


def oneoff(plan: str, *, refunded: bool = False, dispute: str = "") -> OneOffPurchase:
    return OneOffPurchase(
        plan=plan,
        checkout_session_id=f"cs_{plan}",
        refunded_at=NOW - DAY if refunded else None,
        dispute_status=dispute,
    )


def comp(plan: str, *, expires_at: datetime | None = None, revoked: bool = False) -> PlanOverride:
    return PlanOverride(
        plan=plan, reason="thanks", expires_at=expires_at, revoked_at=NOW - DAY if revoked else None
    )


def _unix(moment: datetime) -> int:
    return int(moment.timestamp())


def in_dunning(
    *,
    failed_at: datetime,
    retries: bool = True,
    authenticating: bool = False,
    synced: bool = True,
    stripe_now: datetime | None = None,
    paid: bool = False,
) -> Facts:
    """A past_due FlowKit subscription whose renewal first failed at `failed_at` (with
    `paid`, paid since: its subscription not yet re-read as active)."""
    invoice = {
        "id": "in_renewal",
        "status": "paid" if paid else "open",
        "status_transitions": {"finalized_at": _unix(failed_at)},
        "next_payment_attempt": _unix(NOW + 3 * DAY) if retries and not paid else None,
    }
    return Facts(
        subscriptions=[sub("flowkit", "past_due", latest_invoice="in_renewal")],
        invoices={"sub_1": invoice} if synced else {},
        authenticating={"in_renewal"} if authenticating else set(),
        stripe_now=stripe_now,
    )


def _decide(facts: Facts, current: str = "starter") -> Any:
    return plan_decide(facts=facts, current=current, now=NOW)


GRANTING = {"active": "subscription", "trialing": "trial"}
STATUSES = [
    "active",
    "trialing",
    # past_due with no renewal invoice synced: not given the benefit (the grace table
    # below has the rest).
    "past_due",
    "unpaid",
    "canceled",
    "incomplete",
    "incomplete_expired",
    "paused",
]


@pytest.mark.parametrize("interval", ["monthly", "annual"])
@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("plan", ["starter", "flowkit", "launchpack"])
def test_each_plan_under_each_status(plan: str, status: str, interval: str) -> None:
    facts = Facts(subscriptions=[sub(plan, status, interval=interval)])

    decision = _decide(facts, current="launchpack")

    granted = status in GRANTING
    assert decision.plan == (plan if granted else "starter")
    assert decision.by_subscription is granted
    assert [g.kind for g in decision.grants] == ([GRANTING[status]] if granted else [])
    assert decision.why.startswith("subscription sub_1")


@pytest.mark.parametrize(
    ("facts", "plan", "kinds", "why"),
    [
        pytest.param(Facts(), "starter", [], "no active subscription", id="nothing-starter"),
        # Trials and cancellations at the period end.
        pytest.param(
            Facts(subscriptions=[sub("launchpack", "trialing", trial_days=14)]),
            "launchpack",
            ["trial"],
            "subscription sub_1 (trialing)",
            id="trial-grants-its-plan",
        ),
        pytest.param(
            Facts(subscriptions=[sub("flowkit", cancel_at_period_end=True)]),
            "flowkit",
            ["subscription"],
            "subscription sub_1 (active)",
            id="set-to-cancel-kept-until-it-ends",
        ),
        pytest.param(
            Facts(subscriptions=[sub("flowkit", "trialing", cancel_at_period_end=True)]),
            "flowkit",
            ["trial"],
            "subscription sub_1 (trialing)",
            id="trial-set-to-cancel-kept",
        ),
        # One-offs.
        pytest.param(
            Facts(oneoffs=[oneoff("flowkit")]),
            "flowkit",
            ["oneoff"],
            "one-off purchase cs_flowkit",
            id="oneoff-for-good",
        ),
        pytest.param(
            Facts(oneoffs=[oneoff("flowkit", refunded=True)]),
            "starter",
            [],
            "no active subscription",
            id="oneoff-refunded",
        ),
        pytest.param(
            Facts(oneoffs=[oneoff("flowkit", dispute="needs_response")]),
            "starter",
            [],
            "no active subscription",
            id="oneoff-disputed-open",
        ),
        pytest.param(
            Facts(oneoffs=[oneoff("flowkit", dispute="lost")]),
            "starter",
            [],
            "no active subscription",
            id="oneoff-dispute-lost",
        ),
        pytest.param(
            Facts(oneoffs=[oneoff("flowkit", dispute="won")]),
            "flowkit",
            ["oneoff"],
            "one-off purchase",
            id="oneoff-dispute-won",
        ),
        pytest.param(
            Facts(oneoffs=[oneoff("flowkit", dispute="warning_closed")]),
            "flowkit",
            ["oneoff"],
            "one-off purchase",
            id="oneoff-inquiry-closed",
        ),
        # Comps.
        pytest.param(
            Facts(overrides=[comp("launchpack")]),
            "launchpack",
            ["comp"],
            "staff override: thanks",
            id="comp-for-good",
        ),
        pytest.param(
            Facts(overrides=[comp("flowkit", expires_at=NOW + SECOND)]),
            "flowkit",
            ["comp"],
            "staff override until 2027-01-15 12:00 UTC: thanks",
            id="comp-a-second-before-it-ends",
        ),
        pytest.param(
            Facts(overrides=[comp("flowkit", expires_at=NOW)]),
            "starter",
            [],
            "no active subscription",
            id="comp-ending-exactly-now",
        ),
        pytest.param(
            Facts(overrides=[comp("flowkit", revoked=True)]),
            "starter",
            [],
            "no active subscription",
            id="comp-revoked",
        ),
        # The highest grant wins; ties go to the first (subscriptions, one-offs, comps).
        pytest.param(
            Facts(subscriptions=[sub("flowkit")], oneoffs=[oneoff("launchpack")]),
            "launchpack",
            ["oneoff", "subscription"],
            "one-off purchase cs_launchpack",
            id="oneoff-above-subscription",
        ),
        pytest.param(
            Facts(subscriptions=[sub("launchpack")], overrides=[comp("flowkit")]),
            "launchpack",
            ["subscription", "comp"],
            "subscription sub_1",
            id="subscription-above-comp",
        ),
        pytest.param(
            Facts(subscriptions=[sub("flowkit")], oneoffs=[oneoff("flowkit")]),
            "flowkit",
            ["subscription", "oneoff"],
            "subscription sub_1",
            id="tie-goes-to-the-subscription",
        ),
        pytest.param(
            Facts(oneoffs=[oneoff("flowkit")], overrides=[comp("flowkit")]),
            "flowkit",
            ["oneoff", "comp"],
            "one-off purchase",
            id="tie-oneoff-before-comp",
        ),
        pytest.param(
            Facts(
                subscriptions=[sub("launchpack", "canceled", id="sub_old"), sub("flowkit")],
            ),
            "flowkit",
            ["subscription"],
            "subscription sub_1",
            id="ended-launchpack-beside-live-flowkit",
        ),
        pytest.param(
            Facts(subscriptions=[sub("launchpack", "canceled")], overrides=[comp("flowkit")]),
            "flowkit",
            ["comp"],
            "staff override",
            id="comp-outlasts-a-cancelled-subscription",
        ),
    ],
)
def test_what_grants_the_plan(facts: Facts, plan: str, kinds: list[str], why: str) -> None:
    decision = _decide(facts)

    assert decision.plan == plan
    assert [g.kind for g in decision.grants] == kinds
    assert decision.why.startswith(why)


@pytest.mark.parametrize(
    ("facts", "plan", "kind", "recheck_in", "why"),
    [
        pytest.param(
            in_dunning(failed_at=NOW - DAY),
            "flowkit",
            "grace",
            GRACE - DAY,
            "past_due, Stripe retrying, in the 7-day grace period",
            id="a-day-in-kept",
        ),
        pytest.param(
            in_dunning(failed_at=NOW - GRACE + SECOND),
            "flowkit",
            "grace",
            SECOND,
            "in the 7-day grace period",
            id="a-second-before-the-end-kept",
        ),
        pytest.param(
            in_dunning(failed_at=NOW - GRACE),
            "starter",
            None,
            None,
            "the 7-day grace after its failed renewal has ended",
            id="exactly-at-the-end-dropped",
        ),
        pytest.param(
            in_dunning(failed_at=NOW - GRACE - SECOND),
            "starter",
            None,
            None,
            "the 7-day grace after its failed renewal has ended",
            id="a-second-after-the-end-dropped",
        ),
        pytest.param(
            in_dunning(failed_at=NOW - DAY, retries=False),
            "starter",
            None,
            None,
            "Stripe no longer retries its unpaid renewal",
            id="no-longer-retried-dropped",
        ),
        pytest.param(
            in_dunning(failed_at=NOW - DAY, retries=False, authenticating=True),
            "flowkit",
            "grace",
            GRACE - DAY,
            "past_due, waiting for 3-D Secure",
            id="waiting-for-3ds-kept",
        ),
        pytest.param(
            in_dunning(failed_at=NOW - DAY, synced=False),
            "starter",
            None,
            None,
            "its unpaid renewal invoice is not synced yet",
            id="invoice-not-synced-dropped",
        ),
        pytest.param(
            in_dunning(failed_at=NOW - DAY, stripe_now=NOW + 2 * DAY),
            "flowkit",
            "grace",
            GRACE - 3 * DAY,
            "in the 7-day grace period",
            id="stripe-clock-ahead-counts",
        ),
        pytest.param(
            in_dunning(failed_at=NOW - DAY, stripe_now=NOW + GRACE),
            "starter",
            None,
            None,
            "has ended",
            id="stripe-clock-past-the-end-dropped",
        ),
        pytest.param(
            # Paid (a retry, 3-D Secure, the hosted page) when the subscription was last
            # read past_due: Stripe makes it active, and that event may come later.
            in_dunning(failed_at=NOW - GRACE - DAY, paid=True),
            "flowkit",
            "subscription",
            None,
            "past_due, its renewal invoice paid",
            id="renewal-paid-before-the-subscription-says-active-kept",
        ),
    ],
)
def test_the_grace_of_a_failed_renewal(
    facts: Facts, plan: str, kind: str | None, recheck_in: timedelta | None, why: str
) -> None:
    decision = _decide(facts, current="flowkit")

    assert decision.plan == plan
    assert decision.recheck_in == recheck_in
    assert why in decision.why
    if kind is None:
        assert decision.grants == []
    else:
        [grant] = decision.grants
        judged_at = max(NOW, facts.stripe_now or NOW)
        ends_at = judged_at + recheck_in if recheck_in is not None else None
        assert (grant.kind, grant.ends_at) == (kind, ends_at)


@pytest.mark.parametrize(
    ("facts", "current", "plan", "unknown"),
    [
        pytest.param(
            Facts(subscriptions=[sub(price=unknown_price())]),
            "flowkit",
            "flowkit",
            ["price_addon"],
            id="only-unknown-keeps-the-current-plan",
        ),
        pytest.param(
            Facts(subscriptions=[sub(price=unknown_price())]),
            "starter",
            "starter",
            ["price_addon"],
            id="only-unknown-keeps-starter",
        ),
        pytest.param(
            Facts(
                subscriptions=[sub("flowkit", id="sub_a"), sub(price=unknown_price(), id="sub_b")]
            ),
            "launchpack",
            "launchpack",
            ["price_addon"],
            id="unknown-beside-known-keeps-a-higher-current",
        ),
        pytest.param(
            Facts(
                subscriptions=[
                    sub("launchpack", id="sub_a"),
                    sub(price=unknown_price(), id="sub_b"),
                ]
            ),
            "flowkit",
            "launchpack",
            ["price_addon"],
            id="unknown-beside-known-higher-raises",
        ),
        pytest.param(
            Facts(subscriptions=[sub(price=unknown_price()), sub("flowkit", "canceled")]),
            "starter",
            "starter",
            ["price_addon"],
            id="unknown-never-guessed-up",
        ),
        pytest.param(
            Facts(subscriptions=[sub(status="canceled", price=unknown_price())]),
            "flowkit",
            "starter",
            [],
            id="unknown-on-a-cancelled-one-not-read",
        ),
        pytest.param(
            Facts(subscriptions=[sub(price=unknown_price())], oneoffs=[oneoff("launchpack")]),
            "flowkit",
            "launchpack",
            ["price_addon"],
            id="unknown-below-a-oneoff",
        ),
    ],
)
def test_an_unknown_price_keeps_the_plan_rather_than_guessing(
    facts: Facts, current: str, plan: str, unknown: list[str]
) -> None:
    decision = _decide(facts, current=current)

    assert decision.plan == plan
    assert decision.unknown_prices == unknown
