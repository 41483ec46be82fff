"""What comes next for a subscription (billing.outlook.subscription_outlook), as a table:
renews, cancels, a trial that ends, a scheduled change, a payment overdue.

Pure rule, so no database: none of these tests has the django_db mark, and
pytest-django fails any of them that touches the database.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from billing.outlook import subscription_outlook
from tests import builders

START = int(datetime(2027, 1, 1, tzinfo=UTC).timestamp())
END = START + 30 * builders.DAY  # 31 January 2027
MID = START + 19 * builders.DAY  # 20 January 2027

PRICES = {
    "price_fk_m": builders.plan_price("flowkit", "monthly", id="price_fk_m"),
    "price_lp_m": builders.plan_price("launchpack", "monthly", id="price_lp_m"),
}


@pytest.fixture(autouse=True)
def _prices_by_lookup_key(settings: Any) -> None:
    settings.STRIPE_PRICE_IDS = {}


def sub(plan: str = "flowkit", interval: str = "monthly", **values: Any) -> dict[str, Any]:
    return builders.subscription(plan=plan, interval=interval, period_start=START, **values)


def schedule(price_id: str, *, starts: int = END, status: str = "active") -> dict[str, Any]:
    """A subscription schedule whose next phase moves to `price_id` at `starts`."""
    return {
        "id": "sub_sched_1",
        "status": status,
        "phases": [
            {"start_date": START, "items": [{"price": "price_now", "quantity": 1}]},
            {"start_date": starts, "items": [{"price": price_id, "quantity": 1}]},
        ],
    }


@pytest.mark.parametrize(
    ("subscription", "plan_schedule", "kind", "sentence", "amount", "per"),
    [
        pytest.param(
            sub(), None, "renews", "Renews on 31 January 2027", 4900, "month", id="active"
        ),
        pytest.param(
            sub(interval="annual"),
            None,
            "renews",
            "Renews on 31 January 2027",
            4900,
            "year",
            id="annual-active",
        ),
        # Cancellations: no next payment.
        pytest.param(
            sub(cancel_at_period_end=True),
            None,
            "cancels",
            "Cancels on 31 January 2027",
            None,
            "month",
            id="cancel-at-period-end",
        ),
        pytest.param(
            sub(cancel_at=MID),
            None,
            "cancels",
            "Cancels on 20 January 2027",
            None,
            "month",
            id="cancel-at-a-date",
        ),
        pytest.param(
            sub(status="trialing", trial_days=14, cancel_at_period_end=True),
            None,
            "cancels",
            "Cancels on 31 January 2027",
            None,
            "month",
            id="trial-set-to-cancel-cancels",
        ),
        pytest.param(
            sub(status="past_due", cancel_at_period_end=True),
            None,
            "cancels",
            "Cancels on 31 January 2027",
            None,
            "month",
            id="overdue-set-to-cancel-cancels",
        ),
        # Trials.
        pytest.param(
            sub(trial_days=14),
            None,
            "trial",
            "Trial ends on 15 January 2027",
            4900,
            "month",
            id="trial-ends-at-its-end",
        ),
        pytest.param(
            sub(status="trialing", trial_end=None),
            None,
            "trial",
            "Trial ends on 31 January 2027",
            4900,
            "month",
            id="trial-without-end-at-period-end",
        ),
        # Overdue: the period renewed, its payment did not come in.
        pytest.param(
            sub(status="past_due"), None, "renews", "Payment overdue", 4900, "month", id="past-due"
        ),
        pytest.param(
            sub(status="unpaid"), None, "renews", "Payment overdue", 4900, "month", id="unpaid"
        ),
        # Schedules.
        pytest.param(
            sub("launchpack"),
            schedule("price_fk_m"),
            "changes",
            "Changes to FlowKit on 31 January 2027",
            4900,
            "month",
            id="scheduled-downgrade",
        ),
        pytest.param(
            sub("flowkit", "annual"),
            schedule("price_fk_m"),
            "changes",
            "Changes to FlowKit monthly on 31 January 2027",
            4900,
            "month",
            id="scheduled-annual-to-monthly",
        ),
        pytest.param(
            sub("flowkit"),
            schedule("price_fk_m"),
            "renews",
            "Renews on 31 January 2027",
            4900,
            "month",
            id="scheduled-same-price-renews",
        ),
        pytest.param(
            sub("launchpack"),
            schedule("price_fk_m", status="released"),
            "renews",
            "Renews on 31 January 2027",
            4900,
            "month",
            id="released-schedule-renews",
        ),
        pytest.param(
            sub("launchpack"),
            schedule("price_fk_m", starts=MID),
            "renews",
            "Renews on 31 January 2027",
            4900,
            "month",
            id="phase-not-at-period-end-renews",
        ),
        pytest.param(
            sub("launchpack"),
            schedule("price_not_synced"),
            "renews",
            "Renews on 31 January 2027",
            4900,
            "month",
            id="phase-price-not-synced-renews",
        ),
        pytest.param(
            sub("flowkit", cancel_at_period_end=True),
            schedule("price_lp_m"),
            "cancels",
            "Cancels on 31 January 2027",
            None,
            "month",
            id="cancel-wins-over-a-schedule",
        ),
    ],
)
def test_what_comes_next(
    subscription: dict,
    plan_schedule: dict | None,
    kind: str,
    sentence: str,
    amount: int | None,
    per: str,
) -> None:
    outlook = subscription_outlook(
        subscription, schedule=plan_schedule, prices=PRICES, next_amount=4900
    )

    assert (outlook.kind, outlook.sentence(), outlook.amount, outlook.per) == (
        kind,
        sentence,
        amount,
        per,
    )


@pytest.mark.parametrize(
    ("subscription", "plan_label", "interval_words", "status_words"),
    [
        pytest.param(sub(), "FlowKit", "monthly", "Active", id="flowkit-monthly"),
        pytest.param(
            sub("launchpack", "annual"), "LaunchPack", "yearly", "Active", id="launchpack-annual"
        ),
        pytest.param(sub(trial_days=14), "FlowKit", "monthly", "On a free trial", id="trialing"),
        pytest.param(
            sub(price=builders.plan_price(lookup_key=None)),
            "Unknown plan",
            "monthly",
            "Active",
            id="unknown-price",
        ),
        pytest.param(
            sub(status="past_due"),
            "FlowKit",
            "monthly",
            "Payment overdue: we are retrying your card",
            id="past-due",
        ),
        pytest.param(
            sub(status="some_new_status"), "FlowKit", "monthly", "Some new status", id="new"
        ),
    ],
)
def test_what_the_outlook_names(
    subscription: dict, plan_label: str, interval_words: str, status_words: str
) -> None:
    outlook = subscription_outlook(subscription)

    assert (outlook.plan_label, outlook.interval_words, outlook.status_words) == (
        plan_label,
        interval_words,
        status_words,
    )
