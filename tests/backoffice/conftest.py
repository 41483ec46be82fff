from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Group

from accounts.models import User
from backoffice.roles import roles_sync
from tests.billing import stripe_fakes as sf
from tests.helpers import PASSWORD


@pytest.fixture
def roles(db) -> None:
    """The groups as backoffice.roles defines them."""
    roles_sync()


def _member(email: str, group: str) -> User:
    user = User.objects.create_user(email, PASSWORD, is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def support_user(roles) -> User:
    return _member("support@smartflowsystems.com", "Support")


@pytest.fixture
def billing_admin(roles) -> User:
    return _member("billing@smartflowsystems.com", "Billing admin")


@pytest.fixture
def subscribe(deliver, fake_stripe, catalog, payer) -> Callable[..., dict[str, Any]]:
    """Give the `customer` a subscription, delivered as Stripe would."""

    def _subscribe(
        plan: str = "flowkit", status: str = "active", cus: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        # `cus`: another Stripe customer (one customer with two live subscriptions has
        # the newer cancelled and refunded: billing/duplicates.py).
        if cus is not None:
            fake_stripe.add(cus)
        sub = sf.subscription(cus=cus or payer, prc=catalog[f"{plan}_monthly"], status=status)
        fake_stripe.add(sub)
        assert deliver(sf.event("customer.subscription.created", sub)).status_code == 200
        return sub

    return _subscribe
