"""Changing the account's email (allauth's email page, ACCOUNT_CHANGE_EMAIL): confirmed
at the new address, the old one told, and Stripe's customer follows."""

from __future__ import annotations

import pytest
from django_tasks_db.models import DBTaskResult
from djstripe.models import Customer

from accounts.models import User
from billing.tasks import stripe_customer_email_sync
from tests.accounts.helpers import emails_sent, link_in
from tests.helpers import PASSWORD

pytestmark = pytest.mark.django_db

SITE_URL = "https://app.smartflowsystems.com"


@pytest.fixture(autouse=True)
def site_url(settings) -> None:
    settings.SITE_URL = SITE_URL


def _change(client, email: str):
    return client.post("/email/", {"email": email, "action_add": ""})


def test_the_new_address_is_confirmed_before_it_replaces_the_old(client, customer):
    client.force_login(customer)

    _change(client, "New@Example.com")

    customer.refresh_from_db()
    assert customer.email == "customer@example.com"  # not yet
    [message] = emails_sent()
    assert message.to == ["new@example.com"]
    client.post(link_in(message, "/confirm-email/").removeprefix(SITE_URL))
    customer.refresh_from_db()
    assert customer.email == "new@example.com"
    assert customer.email_verified
    notice = emails_sent()[-1]
    assert notice.to == ["customer@example.com"]
    assert "new@example.com" in notice.body
    client.logout()
    login = client.post("/login/", {"login": "new@example.com", "password": PASSWORD})
    assert login["Location"] == "/"


def test_the_stripe_customer_gets_the_new_address(client, customer, payer, fake_stripe):
    Customer.sync_from_stripe_data(payer)
    client.force_login(customer)
    _change(client, "new@example.com")
    [message] = emails_sent()

    client.post(link_in(message, "/confirm-email/").removeprefix(SITE_URL))

    [queued] = DBTaskResult.objects.filter(task_path__endswith="stripe_customer_email_sync")
    assert stripe_customer_email_sync.call(*queued.args_kwargs["args"]) == 1
    assert fake_stripe.objects[payer["id"]]["email"] == "new@example.com"
    assert Customer.objects.get(id=payer["id"]).email == "new@example.com"


def test_a_lookalike_address_is_refused(client, customer):
    client.force_login(customer)

    response = _change(client, "customer@ex\u0430mple.com")  # Cyrillic a

    assert "plain letters" in response.content.decode()
    assert emails_sent() == []
    assert User.objects.get().email == "customer@example.com"


def test_the_email_page_needs_login(client):
    assert client.get("/email/")["Location"].startswith("/login/")
