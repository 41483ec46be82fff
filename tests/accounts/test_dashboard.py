from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_dashboard_needs_login(client):
    response = client.get("/")

    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/"


def test_dashboard_shows_the_plan(client, customer):
    customer.plan = "flowkit"
    customer.save()
    client.force_login(customer)

    body = client.get("/").content.decode()

    assert "FlowKit" in body
    assert 'data-plan="flowkit"' in body
