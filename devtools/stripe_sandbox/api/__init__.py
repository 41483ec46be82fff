"""The sandbox's answer to each Stripe API request: `api_request` routes it to a handler
in the module of its resource (importing them registers their routes)."""

from __future__ import annotations

from devtools.stripe_sandbox.api import (  # noqa: F401  (registers the routes)
    account,
    checkout,
    coupons,
    customers,
    disputes,
    events,
    invoicing,
    payments,
    portal,
    products,
    schedules,
    subscriptions,
)
from devtools.stripe_sandbox.api.router import api_request

__all__ = ["api_request"]
