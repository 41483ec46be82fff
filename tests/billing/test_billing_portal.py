"""The app's Billing Portal configuration (billing/portal.py) and the portal sessions
opened with it."""

from __future__ import annotations

from io import StringIO

import pytest
import stripe
from django.core.management import call_command

from billing.portal import MARKER
from billing.stripe_api import api_kwargs

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed_in(client, customer):
    client.force_login(customer)
    return client


def _run(*args: str) -> str:
    out = StringIO()
    call_command("billing_portal", *args, stdout=out)
    return out.getvalue().strip()


def _ours() -> list[stripe.billing_portal.Configuration]:
    return [
        c
        for c in stripe.billing_portal.Configuration.list(limit=100, **api_kwargs()).data
        if c.to_dict()["metadata"] == MARKER
    ]


def test_the_command_creates_the_portal_configuration_once(fake_stripe, settings):
    first = _run()
    second = _run()

    [config] = _ours()
    assert first == f"portal configuration {config.id}: created"
    assert second == f"portal configuration {config.id}: unchanged"
    features = config.features
    assert features.subscription_update.enabled is False
    assert features.subscription_cancel.enabled is True
    assert features.subscription_cancel.mode == "at_period_end"
    assert features.subscription_cancel.cancellation_reason.enabled is True
    assert features.payment_method_update.enabled is True
    assert features.invoice_history.enabled is True
    assert config.default_return_url == f"{settings.SITE_URL}/billing/"


def test_the_command_puts_back_a_configuration_that_drifted(fake_stripe):
    _run()
    [config] = _ours()
    stripe.billing_portal.Configuration.modify(
        config.id, features={"subscription_cancel": {"mode": "immediately"}}, **api_kwargs()
    )

    checked = _run("--check")
    fixed = _run()

    assert checked == f"portal configuration {config.id}: differs"
    assert fixed == f"portal configuration {config.id}: updated"
    again = stripe.billing_portal.Configuration.retrieve(config.id, **api_kwargs())
    assert again.features.subscription_cancel.mode == "at_period_end"
    assert _run() == f"portal configuration {config.id}: unchanged"


def test_the_setting_names_the_configuration_kept(fake_stripe, settings):
    theirs = stripe.billing_portal.Configuration.create(
        features={"invoice_history": {"enabled": False}}, **api_kwargs()
    )
    settings.STRIPE_PORTAL_CONFIGURATION = theirs.id

    assert _run() == f"portal configuration {theirs.id}: updated"
    kept = stripe.billing_portal.Configuration.retrieve(theirs.id, **api_kwargs())
    assert kept.features.invoice_history.enabled is True
    assert len(stripe.billing_portal.Configuration.list(**api_kwargs()).data) == 1


def test_the_catalog_command_makes_the_portal_configuration_too(fake_stripe):
    """`make run` runs `stripe_catalog --sandbox-only`: the sandbox gets the portal too."""
    out = StringIO()

    call_command("stripe_catalog", "--sandbox-only", stdout=out)

    [config] = _ours()
    assert f"portal configuration {config.id}: created" in out.getvalue()


def test_portal_sessions_are_opened_with_the_apps_configuration(signed_in, fake_stripe):
    _run()
    [config] = _ours()

    response = signed_in.post("/billing/portal/")

    assert response.status_code == 303
    [params] = fake_stripe.calls_to("POST", "/v1/billing_portal/sessions")
    assert params["configuration"] == config.id


def test_the_portal_is_not_opened_without_the_apps_configuration(signed_in, fake_stripe):
    # The dashboard's default configuration would let Stripe's settings decide.
    response = signed_in.post("/billing/portal/")

    assert response.status_code == 503
    assert "Nothing was changed" in response.content.decode()
    assert fake_stripe.calls_to("POST", "/v1/billing_portal/sessions") == []
