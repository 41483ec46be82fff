"""The grace of a failed renewal (billing/dunning.py), as tables: when it ends, whether
Stripe still retries, which clock judges it, and how long the plan is still kept.

Pure rules, so no database: none of these tests has the django_db mark, and
pytest-django fails any of them that touches the database.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from billing.dunning import decision_now, grace_ends_at, grace_remaining, still_retrying

NOW = datetime(2027, 1, 15, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)
DAY = timedelta(days=1)
GRACE = timedelta(days=7)


@pytest.fixture(autouse=True)
def _seven_days_grace(settings: Any) -> None:
    settings.BILLING_PAST_DUE_GRACE_DAYS = 7


def _unix(moment: datetime | None) -> int | None:
    return int(moment.timestamp()) if moment else None


def renewal(
    *,
    failed_at: datetime | None = None,
    created: datetime | None = None,
    status: str = "open",
    retries: bool = True,
) -> dict[str, Any]:
    """A renewal invoice whose first attempt failed at `failed_at` (its finalization,
    on Stripe's clock); `retries`: Stripe will attempt it again (next_payment_attempt)."""
    return {
        "id": "in_renewal",
        "status": status,
        "created": _unix(created),
        "status_transitions": {"finalized_at": _unix(failed_at)},
        "next_payment_attempt": _unix(NOW + 3 * DAY) if retries else None,
    }


@pytest.mark.parametrize(
    ("invoice", "days", "ends"),
    [
        pytest.param(renewal(failed_at=NOW), 7, NOW + GRACE, id="7-days-after-the-failure"),
        pytest.param(renewal(failed_at=NOW), 3, NOW + 3 * DAY, id="the-setting's-days"),
        pytest.param(renewal(failed_at=NOW), 0, NOW, id="no-grace-ends-at-the-failure"),
        pytest.param(
            renewal(failed_at=NOW, created=NOW - DAY), 7, NOW + GRACE, id="finalized-before-created"
        ),
        pytest.param(renewal(created=NOW - DAY), 7, NOW + 6 * DAY, id="no-finalized-uses-created"),
        pytest.param(renewal(), 7, None, id="no-time-no-end"),
    ],
)
def test_grace_ends_at(settings: Any, invoice: dict, days: int, ends: datetime | None) -> None:
    settings.BILLING_PAST_DUE_GRACE_DAYS = days
    assert grace_ends_at(invoice) == ends


@pytest.mark.parametrize(
    ("invoice", "retrying"),
    [
        pytest.param(renewal(failed_at=NOW), True, id="open-with-a-next-attempt"),
        pytest.param(renewal(failed_at=NOW, retries=False), False, id="open-no-next-attempt"),
        pytest.param(renewal(failed_at=NOW, status="paid"), False, id="paid"),
        pytest.param(renewal(failed_at=NOW, status="void"), False, id="void"),
        pytest.param(renewal(failed_at=NOW, status="uncollectible"), False, id="uncollectible"),
        pytest.param(renewal(failed_at=NOW, status="draft"), False, id="draft"),
        pytest.param(None, False, id="no-invoice"),
    ],
)
def test_still_retrying(invoice: dict | None, retrying: bool) -> None:
    assert still_retrying(invoice) is retrying


@pytest.mark.parametrize(
    ("stripe_now", "judged_at"),
    [
        pytest.param(None, NOW, id="no-stripe-time-our-clock"),
        pytest.param(NOW + DAY, NOW + DAY, id="stripe-ahead-stripe's"),
        pytest.param(NOW - DAY, NOW, id="stripe-behind-ours"),
        pytest.param(NOW, NOW, id="both-the-same"),
    ],
)
def test_decision_now_is_the_later_clock(stripe_now: datetime | None, judged_at: datetime) -> None:
    assert decision_now(now=NOW, stripe_now=stripe_now) == judged_at


@pytest.mark.parametrize(
    ("invoice", "stripe_now", "authenticating", "left"),
    [
        # Boundaries of the 7 days, on our clock.
        pytest.param(renewal(failed_at=NOW), None, False, GRACE, id="just-failed-all-7-days"),
        pytest.param(
            renewal(failed_at=NOW - SECOND), None, False, GRACE - SECOND, id="a-second-in"
        ),
        pytest.param(
            renewal(failed_at=NOW - GRACE + SECOND),
            None,
            False,
            SECOND,
            id="a-second-before-the-end-kept",
        ),
        pytest.param(renewal(failed_at=NOW - GRACE), None, False, None, id="exactly-at-the-end"),
        pytest.param(
            renewal(failed_at=NOW - GRACE - SECOND), None, False, None, id="a-second-after-the-end"
        ),
        # Whether Stripe still collects.
        pytest.param(
            renewal(failed_at=NOW - DAY, retries=False),
            None,
            False,
            None,
            id="not-retried-in-grace",
        ),
        pytest.param(
            renewal(failed_at=NOW - DAY, retries=False),
            None,
            True,
            GRACE - DAY,
            id="waiting-for-3ds-in-grace-kept",
        ),
        pytest.param(
            renewal(failed_at=NOW - GRACE, retries=False),
            None,
            True,
            None,
            id="waiting-for-3ds-at-the-end",
        ),
        pytest.param(
            renewal(failed_at=NOW - DAY, status="paid"), None, False, None, id="paid-not-kept"
        ),
        pytest.param(renewal(), None, False, None, id="no-failure-time"),
        pytest.param(
            renewal(created=NOW - DAY), None, False, GRACE - DAY, id="counted-from-created"
        ),
        # Which clock: the later of ours and Stripe's newest time.
        pytest.param(
            renewal(failed_at=NOW - DAY), NOW + DAY, False, GRACE - 2 * DAY, id="stripe-a-day-ahead"
        ),
        pytest.param(
            renewal(failed_at=NOW - DAY), NOW - 3 * DAY, False, GRACE - DAY, id="stripe-behind-ours"
        ),
        pytest.param(
            renewal(failed_at=NOW - SECOND),
            NOW + GRACE,
            False,
            None,
            id="stripe-past-the-end-ours-inside",
        ),
        pytest.param(
            renewal(failed_at=NOW),
            NOW + GRACE - SECOND,
            False,
            SECOND,
            id="stripe-a-second-before-the-end",
        ),
    ],
)
def test_grace_remaining(
    invoice: dict, stripe_now: datetime | None, authenticating: bool, left: timedelta | None
) -> None:
    assert (
        grace_remaining(
            invoice=invoice,
            now=NOW,
            stripe_now=stripe_now,
            awaiting_authentication=authenticating,
        )
        == left
    )
