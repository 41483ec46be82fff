"""The Billing Portal configuration the app creates and keeps in Stripe.

A portal session without `configuration` uses whatever the Stripe dashboard's portal
settings say, which may switch plans at once (charging a proration the customer never saw)
or cancel at once. The app's own configuration allows only what does not get round its
rules: card update, invoice history, address and VAT number, and cancellation at the
period end with a reason. Plan changes are not offered there: the app's upgrade and
downgrade pages do them, with Stripe's preview of the amount.

The configuration is found by `STRIPE_PORTAL_CONFIGURATION` when set (an id, for an
account whose configuration is kept elsewhere), else by its metadata marker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import stripe
from django.conf import settings
from django.urls import reverse

from billing.stripe_api import api_kwargs

# The metadata that marks the configuration as the app's.
MARKER = {"smartflow": "portal"}
REASONS = [
    "too_expensive",
    "missing_features",
    "switched_service",
    "unused",
    "too_complex",
    "low_quality",
    "customer_service",
    "other",
]


class PortalNotConfigured(Exception):
    """No portal configuration of the app's exists: the portal is not opened."""


@dataclass(frozen=True)
class PortalSync:
    configuration_id: str | None
    outcome: str  # created, updated, unchanged, missing, differs

    def summary(self) -> str:
        return f"portal configuration {self.configuration_id or '-'}: {self.outcome}"


def wanted_features() -> dict[str, Any]:
    """The portal's features, as Stripe's API takes them."""
    return {
        # The email is the login, changed in the app; the address and VAT number are
        # what an invoice needs.
        "customer_update": {"enabled": True, "allowed_updates": ["address", "tax_id"]},
        "invoice_history": {"enabled": True},
        "payment_method_update": {"enabled": True},
        "subscription_cancel": {
            "enabled": True,
            "mode": "at_period_end",
            "proration_behavior": "none",
            "cancellation_reason": {"enabled": True, "options": REASONS},
        },
        # No plan switching in the portal: the app sells changes with their amounts.
        "subscription_update": {"enabled": False},
    }


def wanted_return_url() -> str:
    return f"{settings.SITE_URL}{reverse('billing:account')}"


def _differs(config: dict[str, Any]) -> bool:
    features = config.get("features") or {}
    for name, wanted in wanted_features().items():
        have = features.get(name) or {}
        for key, value in wanted.items():
            if key == "cancellation_reason":
                reason = have.get(key) or {}
                if reason.get("enabled") != value["enabled"] or sorted(
                    reason.get("options") or []
                ) != sorted(value["options"]):
                    return True
            elif isinstance(value, list):
                if sorted(have.get(key) or []) != sorted(value):
                    return True
            elif have.get(key) != value:
                return True
    return (
        not config.get("active")
        or config.get("default_return_url") != wanted_return_url()
        or any((config.get("metadata") or {}).get(k) != v for k, v in MARKER.items())
    )


def _params() -> dict[str, Any]:
    return {
        "features": wanted_features(),
        "default_return_url": wanted_return_url(),
        "metadata": MARKER,
        "name": "SmartFlow",
    }


def configuration_find(*, active_only: bool) -> dict[str, Any] | None:
    """The app's configuration: the one `STRIPE_PORTAL_CONFIGURATION` names, else the
    (newest) one carrying the app's marker."""
    if settings.STRIPE_PORTAL_CONFIGURATION:
        named = stripe.billing_portal.Configuration.retrieve(
            settings.STRIPE_PORTAL_CONFIGURATION, **api_kwargs()
        ).to_dict()
        return named if named["active"] or not active_only else None
    params: dict[str, Any] = {"limit": 100}
    if active_only:
        params["active"] = True
    for found in stripe.billing_portal.Configuration.list(
        **params, **api_kwargs()
    ).auto_paging_iter():
        data = found.to_dict()
        if all((data.get("metadata") or {}).get(k) == v for k, v in MARKER.items()):
            return data
    return None


def configuration_sync(*, check: bool = False) -> PortalSync:
    """Create the app's configuration if missing, update it if it drifted (safe to run
    twice); with `check`, only say which."""
    config = configuration_find(active_only=False)
    if config is None:
        if check:
            return PortalSync(None, "missing")
        created = stripe.billing_portal.Configuration.create(**_params(), **api_kwargs())
        return PortalSync(created["id"], "created")
    if not _differs(config):
        return PortalSync(config["id"], "unchanged")
    if check:
        return PortalSync(config["id"], "differs")
    stripe.billing_portal.Configuration.modify(
        config["id"], active=True, **_params(), **api_kwargs()
    )
    return PortalSync(config["id"], "updated")


def configuration_id() -> str:
    """The id every portal session is opened with; refuses when there is none rather
    than letting the dashboard's settings decide."""
    config = configuration_find(active_only=True)
    if config is None:
        raise PortalNotConfigured(
            "No active Billing Portal configuration of SmartFlow's: run "
            "`manage.py billing_portal` (or set STRIPE_PORTAL_CONFIGURATION)."
        )
    return str(config["id"])
