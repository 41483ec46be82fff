"""billing/outlook.py: what the dashboard and billing page say comes next."""

from __future__ import annotations

import pytest

from billing.outlook import subscription_outlook
from tests.billing import stripe_fakes as sf


def _sub(status: str) -> dict:
    price = sf.price(prod=sf.product(), lookup_key="flowkit_monthly")
    return sf.subscription(cus=sf.customer(), prc=price, status=status)


def test_an_active_subscription_renews_on_its_period_end():
    outlook = subscription_outlook(_sub("active"))
    assert not outlook.overdue
    assert outlook.sentence().startswith("Renews on ")


@pytest.mark.parametrize("status", ["past_due", "unpaid"])
def test_a_renewal_not_paid_is_overdue_not_renewing(status):
    # Its period has already moved on; "Renews on <next month>" would say all is well.
    outlook = subscription_outlook(_sub(status))
    assert outlook.overdue
    assert outlook.sentence() == "Payment overdue"
