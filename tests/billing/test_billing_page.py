"""The customer's billing page (/billing/): plan, what comes next, card, invoices,
one-off purchases and refunds, from dj-stripe's synced rows without a Stripe call."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from io import StringIO

import pytest
from django.core.management import call_command
from djstripe.models import Subscription

from billing.models import OneOffPurchase
from devtools.stripe_sandbox import collection, store
from devtools.stripe_sandbox.delivery import deliver_pending
from tests.sandbox_app import app_transport

pytestmark = pytest.mark.django_db


def _path(url: str) -> str:
    return url.removeprefix("http://testserver")


def _deliver(client) -> None:
    assert deliver_pending(transport=app_transport(client)).failed == 0


def _long(ts: int) -> str:
    moment = datetime.fromtimestamp(ts, tz=UTC)
    return f"{moment.day} {moment:%B %Y}"


def _back_from_checkout(client, customer, settings, interval: str) -> None:
    """`customer` pays FlowKit (`interval`) with 4242 in the sandbox's Checkout and is back
    on the success page, which fulfils it; no webhook delivered yet."""
    settings.SITE_URL = "http://testserver"
    call_command("stripe_catalog", stdout=StringIO())
    client.force_login(customer)
    checkout = client.post("/billing/checkout/", {"plan": "flowkit", "interval": interval})
    paid = client.post(_path(checkout["Location"]), {"card_number": "4242 4242 4242 4242"})
    assert client.get(_path(paid["Location"])).status_code == 200


@pytest.fixture
def subscribed(client, customer, fake_stripe, settings):
    """A FlowKit subscriber who paid in the sandbox's Checkout, renewed once, and got
    part of the renewal refunded; every webhook delivered."""
    settings.SITE_URL = "http://testserver"
    call_command("stripe_catalog", stdout=StringIO())
    client.force_login(customer)
    checkout = client.post("/billing/checkout/", {"plan": "flowkit", "interval": "monthly"})
    client.post(_path(checkout["Location"]), {"card_number": "4242 4242 4242 4242"})
    _deliver(client)
    sub = Subscription.objects.get().stripe_data
    # The renewal is charged an hour after its invoice is created, as at Stripe.
    renewal = sub["items"]["data"][0]["current_period_end"] + collection.FINALIZE_SECONDS
    collection.clock_advance(renewal - store.now() + 60)
    call_command("stripe_sandbox", "refund", "--email", customer.email, stdout=StringIO())
    _deliver(client)
    return client


def test_the_billing_page_makes_no_stripe_call(subscribed, fake_stripe):
    fake_stripe.calls.clear()

    response = subscribed.get("/billing/")

    assert response.status_code == 200
    assert fake_stripe.calls == []


def test_the_billing_page_lists_every_invoice_with_its_links(subscribed):
    invoices = list(store.all_of("invoice"))

    page = subscribed.get("/billing/").content.decode()

    assert len(invoices) == 2
    for invoice in invoices:
        assert invoice["number"] in page
        assert f'href="{invoice["hosted_invoice_url"]}"' in page
        assert f'href="{invoice["invoice_pdf"]}"' in page
        assert _long(invoice["status_transitions"]["finalized_at"]) in page
    assert page.count("£49.00") >= 2
    assert page.count('data-status="paid"') == 2


def test_the_billing_page_shows_plan_next_payment_and_card(subscribed):
    sub = Subscription.objects.get().stripe_data
    period_end = sub["items"]["data"][0]["current_period_end"]

    page = subscribed.get("/billing/").content.decode()

    assert "FlowKit" in page
    assert "Active" in page
    assert f"Renews on {_long(period_end)}" in page
    assert "next payment £49.00" in page
    assert "Visa ending 4242, expires 12/2034" in page
    assert 'action="/billing/portal/"' in page
    assert "Manage billing" in page


def test_the_billing_page_lists_refunds_and_one_off_purchases(subscribed, customer):
    OneOffPurchase.objects.create(
        user=customer,
        plan="launchpack",
        checkout_session_id="cs_test_oneoff",
        amount=99000,
        currency="gbp",
    )

    page = subscribed.get("/billing/").content.decode()

    assert re.search(r"<strong>Refund</strong>", page)
    assert "−£49.00" in page
    assert "LaunchPack</strong>, one-off" in page
    assert "£990.00" in page


def test_a_customer_sees_only_their_own_billing(subscribed, client, outsider):
    client.force_login(outsider)

    page = client.get("/billing/").content.decode()

    assert "No invoices yet." in page
    assert "No card on file." in page
    assert "Manage billing" in page


def test_the_card_updated_in_the_portal_is_the_card_on_file(subscribed, customer):
    customer_id = store.all_of("customer")[0]["id"]
    collection.customer_card_set(customer_id, "4000000000000341")
    _deliver(subscribed)

    page = subscribed.get("/billing/").content.decode()

    assert "Visa ending 0341" in page


def test_navigation_and_dashboard_link_to_the_billing_page(subscribed):
    dashboard = subscribed.get("/").content.decode()

    assert dashboard.count('href="/billing/"') == 2  # the navigation and the plan card


def test_just_after_checkout_the_card_and_invoice_are_on_their_way(
    client, customer, fake_stripe, settings
):
    # Back from Checkout before the worker has processed its webhooks (a queue behind a
    # storm): the success page synced the subscription, whose card and latest invoice
    # have no row yet. The page says they are coming, not that there are none.
    _back_from_checkout(client, customer, settings, "monthly")

    before = client.get("/billing/").content.decode()
    _deliver(client)
    after = client.get("/billing/").content.decode()

    assert "Your card is on its way from Stripe" in before
    assert "No card on file" not in before
    assert "Your latest invoice is on its way from Stripe" in before
    assert "No invoices yet" not in before
    assert "Visa ending 4242" in after
    assert "on its way" not in after


def test_a_stored_payment_method_that_is_not_a_card_is_not_on_its_way(subscribed):
    # A Direct Debit mandate as the subscription's default: stored, and not a card. The
    # page has no card to show and none to wait for.
    from djstripe.models import Charge, PaymentMethod

    method = PaymentMethod.objects.get(
        id=Subscription.objects.get().stripe_data["default_payment_method"]
    )
    method.stripe_data = {
        **{k: v for k, v in method.stripe_data.items() if k != "card"},
        "type": "bacs_debit",
    }
    method.save()
    Charge.objects.all().delete()  # no card from a charge either

    page = subscribed.get("/billing/").content.decode()

    assert "No card on file." in page
    assert "on its way" not in page


def test_checkouts_card_is_synced_as_a_payment_method(subscribed):
    from djstripe.models import PaymentMethod

    sub = Subscription.objects.get().stripe_data

    method = PaymentMethod.objects.get(id=sub["default_payment_method"])
    assert method.stripe_data["card"]["last4"] == "4242"


def test_a_one_off_buyers_card_is_read_from_the_charge(client, customer, fake_stripe, settings):
    settings.SITE_URL = "http://testserver"
    call_command("stripe_catalog", stdout=StringIO())
    client.force_login(customer)
    checkout = client.post("/billing/checkout/", {"plan": "flowkit", "interval": "oneoff"})
    client.post(_path(checkout["Location"]), {"card_number": "4000 0025 0000 3155"})
    client.post(
        _path(checkout["Location"]),
        {"card_number": "4000 0025 0000 3155", "authenticate": "approve"},
    )
    _deliver(client)
    fake_stripe.calls.clear()

    page = client.get("/billing/").content.decode()

    assert "Visa ending 3155" in page
    assert "FlowKit</strong>, one-off" in page
    assert "£1,470.00" in page
    assert fake_stripe.calls == []


def test_a_one_off_purchase_has_its_paid_invoice_on_the_billing_page(
    client, customer, fake_stripe, settings
):
    # Checkout's `invoice_creation`: the one-off's receipt, with its number and links, in
    # the invoice list and beside the purchase, read from the synced rows.
    _back_from_checkout(client, customer, settings, "oneoff")  # webhooks not yet in
    fake_stripe.calls.clear()

    page = client.get("/billing/").content.decode()

    [invoice] = store.all_of("invoice")
    purchase = OneOffPurchase.objects.get()
    assert (invoice["status"], invoice["total"]) == ("paid", 147000)
    assert purchase.invoice_id == invoice["id"]
    assert f'data-invoice="{invoice["id"]}" data-status="paid"' in page  # the invoice list
    row = page[page.index('<li class="purchase"') :]
    row = row[: row.index("</li>")]
    assert f"invoice {invoice['number']}" in row
    assert f'href="{invoice["hosted_invoice_url"]}"' in row
    assert f'href="{invoice["invoice_pdf"]}"' in row
    assert fake_stripe.calls == []
