from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db


@pytest.fixture
def synced_prices(settings) -> None:
    """The catalogue `make run` makes: stripe_catalog through the offline sandbox."""
    assert settings.STRIPE_SANDBOX
    call_command("stripe_catalog", stdout=StringIO())


def test_a_visitor_gets_the_landing_page_with_plans_and_buttons(client, synced_prices):
    response = client.get("/")

    assert response.status_code == 200  # not a redirect to the login
    body = response.content.decode()
    assert "small business" in body
    for plan in ("Starter", "FlowKit", "LaunchPack"):
        assert plan in body
    # Prices come from the synced Prices, as on /pricing/.
    assert "£49.00" in body
    assert "£990.00" in body
    assert "£2,970.00" in body
    assert 'href="/signup/"' in body
    assert 'href="/login/"' in body
    assert 'data-plan="' not in body  # no dashboard for a visitor


def test_the_landing_page_without_synced_prices_says_unavailable(client):
    body = client.get("/").content.decode()

    assert "not available right now" in body


def test_dashboard_shows_the_plan(client, customer):
    customer.plan = "flowkit"
    customer.save()
    client.force_login(customer)

    body = client.get("/").content.decode()

    assert "FlowKit" in body
    assert 'data-plan="flowkit"' in body
