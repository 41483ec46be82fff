from __future__ import annotations

import pytest
from djstripe.models import Price

pytestmark = pytest.mark.django_db


@pytest.fixture
def synced(catalog):
    for prc in catalog.values():
        Price.sync_from_stripe_data(prc)


def test_pricing_shows_monthly_and_oneoff_amounts(client, synced):
    body = client.get("/pricing/").content.decode()

    assert "£49.00" in body and "£490.00" in body
    assert "£99.00" in body and "£990.00" in body
    assert "Sign up to subscribe" in body  # anonymous visitors sign up first
    assert "/signup/?next=/pricing/" in body


def test_pricing_marks_the_current_plan_and_offers_checkout(client, synced, customer):
    customer.plan = "flowkit"
    customer.save()
    client.force_login(customer)

    body = client.get("/pricing/").content.decode()

    assert body.count("Your plan") == 1
    assert 'action="/billing/checkout/"' in body


def test_pricing_without_synced_prices_says_unavailable(client):
    body = client.get("/pricing/").content.decode()

    assert "not available right now" in body


def test_pricing_answers_head_like_get(client, synced):
    response = client.head("/pricing/")

    assert response.status_code == 200
    assert response.content == b""
