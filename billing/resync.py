"""Staff's "resync from Stripe": re-read a user's billing and recompute the plan."""

from __future__ import annotations

import stripe
from djstripe.models import Customer, Subscription

from accounts.models import User
from billing.entitlements import plan_refresh
from billing.models import PlanChange
from billing.stripe_api import api_kwargs


def billing_resync(*, user: User, actor: User | None) -> PlanChange | None:
    """Re-read `user`'s Stripe customers and all their subscriptions into dj-stripe, then
    recompute the plan (source "reconcile", `actor` the member of staff who asked)."""
    for customer_id in Customer.objects.filter(subscriber=user).values_list("id", flat=True):
        Customer.sync_from_stripe_data(stripe.Customer.retrieve(customer_id, **api_kwargs()))
        subscriptions = stripe.Subscription.list(
            customer=customer_id, status="all", limit=100, **api_kwargs()
        )
        for subscription in subscriptions.auto_paging_iter():
            Subscription.sync_from_stripe_data(subscription)
    return plan_refresh(user=user, source=PlanChange.Source.RECONCILE, actor=actor, notify=False)
