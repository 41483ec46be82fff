"""'Download my data' on the profile: one JSON file of everything held about the customer."""

from __future__ import annotations

import json

import pytest

from accounts.models import User
from tests.privacy.helpers import NAME, PHONE

pytestmark = pytest.mark.django_db


def test_the_profile_offers_the_download_and_the_deletion(client, customer):
    client.force_login(customer)

    page = client.get("/profile/").content.decode()

    assert 'action="/profile/data/"' in page
    assert 'href="/profile/delete/"' in page


def test_the_download_needs_a_signed_in_post(client, customer):
    anonymous = client.post("/profile/data/")
    client.force_login(customer)
    fetched = client.get("/profile/data/")

    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith("/login/")
    assert fetched.status_code == 405


def test_the_file_holds_profile_consents_plan_history_payments_and_messages(client, subscriber):

    response = client.post("/profile/data/")
    data = json.loads(response.content)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert response["Content-Disposition"].startswith('attachment; filename="smartflow-my-data-')
    assert data["profile"]["email"] == "ada@example.com"
    assert data["profile"]["phone"] == PHONE
    assert data["profile"]["plan"] == "flowkit"
    assert data["profile"]["date_joined"]
    assert data["consents"] == {"sms_opt_in": True, "sms_number": PHONE}
    assert [(c["from"], c["to"]) for c in data["plan_history"]] == [("starter", "flowkit")]
    assert data["stripe_customers"][0]["name"] == NAME
    assert data["stripe_customers"][0]["email"] == "ada@example.com"
    [sub] = data["subscriptions"]
    assert sub["status"] == "active"
    [invoice] = data["invoices"]
    assert (invoice["status"], invoice["total"], invoice["currency"]) == ("paid", 4900, "gbp")
    assert invoice["number"]
    assert invoice["hosted_invoice_url"].startswith("http://testserver/sandbox/invoice/in_")
    [payment] = data["payments"]
    assert (payment["amount"], payment["status"]) == (4900, "succeeded")
    assert payment["card"]["last4"] == "4242"
    assert data["payment_intents"][0]["status"] == "succeeded"
    channels = {m["channel"]: m for m in data["messages"]}
    assert channels["email"]["kind"] == "Welcome to the plan"
    assert channels["email"]["subject"] == "Your SmartFlow plan is live"
    assert "FlowKit" in channels["email"]["body"]
    assert "FlowKit" in channels["sms"]["body"]


def test_the_file_holds_no_one_elses_data(client, subscriber):
    other = User.objects.create_user("grace@example.com", "pw-for-grace-1234567")
    client.force_login(other)

    data = json.loads(client.post("/profile/data/").content)
    text = json.dumps(data)

    assert data["profile"]["email"] == "grace@example.com"
    assert "ada@example.com" not in text
    assert data["invoices"] == data["payments"] == data["plan_history"] == []


def test_account_emails_give_their_subject_and_no_one_time_link(client, customer):
    from onboarding.outbox import account_email_enqueue

    link = "https://app.example.com/confirm-email/one-time-key/"
    account_email_enqueue(
        to=customer.email,
        user=customer,
        kind="email_confirmation",
        subject="SmartFlow: Please confirm your email address",
        text=f"Open {link} to confirm.",
    )
    client.force_login(customer)

    response = client.post("/profile/data/")

    assert response.status_code == 200
    body = response.content.decode()
    [message] = json.loads(body)["messages"]
    assert message["subject"] == "SmartFlow: Please confirm your email address"
    assert "one-time-key" not in body
