from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_profile_updates_phone_and_consent(client, customer, twilio):
    client.force_login(customer)

    response = client.post("/profile/", {"phone": "+44 7400 123456", "sms_opt_in": "on"})

    assert response.status_code == 302
    customer.refresh_from_db()
    assert str(customer.phone) == "+447400123456"
    assert customer.sms_opt_in is True


def test_profile_post_cannot_set_plan(client, customer):
    client.force_login(customer)

    response = client.post("/profile/", {"phone": "+44 7400 123456", "plan": "launchpack"})

    # The form was accepted and saved (the phone changed): only the plan was ignored.
    assert response.status_code == 302
    customer.refresh_from_db()
    assert str(customer.phone) == "+447400123456"
    assert customer.plan == "starter"


def test_profile_refuses_invalid_phone_and_keeps_old_one(client, customer):
    customer.phone = "+447911123456"
    customer.save()
    client.force_login(customer)

    response = client.post("/profile/", {"phone": "not a number"})

    assert response.status_code == 200
    assert "Enter a valid phone number" in response.content.decode()
    customer.refresh_from_db()
    assert str(customer.phone) == "+447911123456"


def test_profile_needs_login(client):
    assert client.get("/profile/")["Location"] == "/login/?next=/profile/"


def test_profile_with_an_invalid_phone_and_sms_ticked_gets_one_error(client, customer, twilio):
    client.force_login(customer)

    response = client.post("/profile/", {"phone": "not a number", "sms_opt_in": "on"})

    assert response.status_code == 200
    assert list(response.context["form"].errors) == ["phone"]
    assert len(response.context["form"].errors["phone"]) == 1
    assert "Add a mobile number" not in response.content.decode()
