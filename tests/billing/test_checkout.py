from __future__ import annotations

import re
from io import StringIO

import pytest
import stripe
from allauth.account.models import EmailAddress
from django.core.management import call_command

from billing.models import PlanChange
from tests.billing import stripe_fakes as sf

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed_in(client, customer):
    client.force_login(customer)
    return client


def test_checkout_monthly_creates_a_subscription_session_and_redirects(
    signed_in, fake_stripe, catalog, customer
):
    response = signed_in.post("/billing/checkout/", {"plan": "flowkit", "interval": "monthly"})

    assert response.status_code == 303
    [session] = [o for o in fake_stripe.objects.values() if o["object"] == "checkout.session"]
    assert response["Location"] == session["url"]  # the (sandbox's) hosted checkout page
    [params] = fake_stripe.calls_to("POST", "/v1/checkout/sessions")
    assert params["mode"] == "subscription"
    assert params["line_items[0][price]"] == catalog["flowkit_monthly"]["id"]
    assert params["metadata[djstripe_subscriber]"] == str(customer.pk)
    assert params["metadata[app_user_id]"] == str(customer.pk)
    assert params["client_reference_id"] == str(customer.pk)
    assert params["success_url"].endswith("/billing/success/?session_id={CHECKOUT_SESSION_ID}")
    assert params["cancel_url"].endswith("/pricing/")
    assert params["customer"].startswith("cus_")


def test_checkout_oneoff_creates_a_payment_session(signed_in, fake_stripe, catalog):
    signed_in.post("/billing/checkout/", {"plan": "launchpack", "interval": "oneoff"})

    [params] = fake_stripe.calls_to("POST", "/v1/checkout/sessions")
    assert params["mode"] == "payment"
    assert params["line_items[0][price]"] == catalog["launchpack_oneoff"]["id"]


def test_a_oneoff_checkout_asks_stripe_for_a_paid_invoice(signed_in, fake_stripe, catalog):
    # Without `invoice_creation` a one-off leaves no invoice: no VAT invoice for a business.
    signed_in.post("/billing/checkout/", {"plan": "launchpack", "interval": "oneoff"})
    signed_in.post("/billing/checkout/", {"plan": "flowkit", "interval": "monthly"})

    oneoff, monthly = fake_stripe.calls_to("POST", "/v1/checkout/sessions")
    assert oneoff["invoice_creation[enabled]"] == "true"
    assert oneoff["invoice_creation[invoice_data][metadata][plan]"] == "launchpack"
    # A subscription's invoices come anyway; Stripe refuses the parameter there.
    assert not any(key.startswith("invoice_creation") for key in monthly)


@pytest.mark.parametrize(
    "data", [{"plan": "gold", "interval": "monthly"}, {"plan": "flowkit", "interval": "weekly"}, {}]
)
def test_checkout_with_a_bad_choice_is_400_and_creates_nothing(
    signed_in, fake_stripe, catalog, data
):
    response = signed_in.post("/billing/checkout/", data)

    assert response.status_code == 400
    assert "Choose one of our plans" in response.content.decode()
    assert fake_stripe.calls == []


def test_a_stripe_error_shows_a_friendly_page(signed_in, fake_stripe, catalog):
    fake_stripe.fail = stripe.APIError("boom")

    response = signed_in.post("/billing/checkout/", {"plan": "flowkit", "interval": "monthly"})

    assert response.status_code == 502
    assert "Nothing was charged" in response.content.decode()


def test_a_second_checkout_expires_the_first_open_subscription_session(
    signed_in, fake_stripe, catalog
):
    signed_in.post("/billing/checkout/", {"plan": "flowkit", "interval": "monthly"})
    first = fake_stripe.calls_to("POST", "/v1/checkout/sessions")[0]
    first_id = next(
        o["id"] for o in fake_stripe.objects.values() if o.get("object") == "checkout.session"
    )

    signed_in.post("/billing/checkout/", {"plan": "launchpack", "interval": "monthly"})

    assert first["mode"] == "subscription"
    assert fake_stripe.objects[first_id]["status"] == "expired"


@pytest.mark.parametrize(
    ("url", "data"),
    [
        ("/billing/checkout/", {"plan": "flowkit", "interval": "monthly"}),
        ("/billing/checkout/", {"plan": "launchpack", "interval": "oneoff"}),
        ("/billing/switch/", {"plan": "flowkit", "interval": "monthly"}),
    ],
)
def test_an_unconfirmed_address_cannot_pay_and_is_told_how_to_confirm(
    client, customer, fake_stripe, catalog, url, data
):
    EmailAddress.objects.filter(user=customer).update(verified=False)
    client.force_login(customer)

    response = client.post(url, data)

    assert response.status_code == 403
    body = response.content.decode()
    assert "Confirm your email address first" in body
    assert 'name="action_send"' in body  # sends the link again
    assert fake_stripe.calls_to("POST", "/v1/checkout/sessions") == []
    assert not PlanChange.objects.exists()


def test_the_pricing_page_says_why_an_unconfirmed_customer_cannot_pay(client, customer):
    client.force_login(customer)
    assert "Confirm your email address first" not in client.get("/pricing/").content.decode()

    EmailAddress.objects.filter(user=customer).update(verified=False)

    assert "Confirm your email address first" in client.get("/pricing/").content.decode()


def test_checkout_needs_login_and_post(client, customer):
    assert client.post("/billing/checkout/", {"plan": "flowkit", "interval": "monthly"})[
        "Location"
    ].startswith("/login/")
    client.force_login(customer)
    assert client.get("/billing/checkout/").status_code == 405


def _active_subscription(deliver, fake_stripe, payer, prc):
    sub = sf.subscription(cus=payer, prc=prc)
    fake_stripe.add(sub)
    deliver(sf.event("customer.subscription.created", sub))
    return sub


def test_buying_the_plan_you_subscribe_to_again_is_409_and_creates_nothing(
    signed_in, deliver, fake_stripe, catalog, payer
):
    _active_subscription(deliver, fake_stripe, payer, catalog["flowkit_monthly"])
    fake_stripe.calls.clear()

    response = signed_in.post("/billing/checkout/", {"plan": "flowkit", "interval": "monthly"})

    assert response.status_code == 409
    assert "You already have FlowKit" in response.content.decode()
    assert [c for c in fake_stripe.calls if c[0] == "POST"] == []


def test_another_monthly_plan_switches_the_subscription_after_confirmation(
    signed_in, deliver, fake_stripe, catalog, payer, customer
):
    sub = _active_subscription(deliver, fake_stripe, payer, catalog["flowkit_monthly"])

    response = signed_in.post("/billing/checkout/", {"plan": "launchpack", "interval": "monthly"})
    assert response["Location"] == "/billing/switch/?plan=launchpack"
    page = signed_in.get(response["Location"]).content.decode()
    assert "FlowKit" in page
    assert "LaunchPack" in page
    quote = re.search(r'name="quote" value="([^"]+)"', page).group(1)

    signed_in.post("/billing/switch/", {"plan": "launchpack", "quote": quote})

    [params] = fake_stripe.calls_to("POST", f"/v1/subscriptions/{sub['id']}")
    assert params["items[0][price]"] == catalog["launchpack_monthly"]["id"]
    assert params["proration_behavior"] == "always_invoice"
    assert fake_stripe.calls_to("POST", "/v1/checkout/sessions") == []
    customer.refresh_from_db()
    assert customer.plan == "launchpack"


def test_portal_redirects_to_a_stripe_portal_session(signed_in, fake_stripe):
    # The app opens the portal only under its own configuration (billing/portal.py).
    call_command("billing_portal", stdout=StringIO())

    response = signed_in.post("/billing/portal/")

    assert response.status_code == 303
    [portal] = [o for o in fake_stripe.objects.values() if o["object"] == "billing_portal.session"]
    assert response["Location"] == portal["url"]
    [params] = fake_stripe.calls_to("POST", "/v1/billing_portal/sessions")
    assert params["customer"].startswith("cus_")
    assert signed_in.get("/billing/portal/").status_code == 405


def test_success_page_grants_a_paid_session_of_this_user(
    signed_in, fake_stripe, catalog, payer, customer
):
    sub = sf.subscription(cus=payer, prc=catalog["flowkit_monthly"])
    session = sf.session(cus=payer, mode="subscription", user_id=customer.pk, sub=sub)
    session["metadata"]["plan"] = "flowkit"
    fake_stripe.add(sub, session)

    response = signed_in.get(f"/billing/success/?session_id={session['id']}")

    assert response.status_code == 200
    assert "Your FlowKit plan is live" in response.content.decode()
    customer.refresh_from_db()
    assert customer.plan == "flowkit"


def test_a_forged_session_id_grants_nothing(signed_in, fake_stripe, customer):
    response = signed_in.get("/billing/success/?session_id=cs_test_forged")

    assert response.status_code == 404
    customer.refresh_from_db()
    assert customer.plan == "starter"
    assert not PlanChange.objects.exists()


def test_someone_elses_paid_session_grants_nothing(
    signed_in, fake_stripe, catalog, payer, outsider, customer
):
    sub = sf.subscription(cus=payer, prc=catalog["launchpack_monthly"])
    session = sf.session(cus=payer, mode="subscription", user_id=outsider.pk, sub=sub)
    fake_stripe.add(sub, session)

    assert signed_in.get(f"/billing/success/?session_id={session['id']}").status_code == 404
    customer.refresh_from_db()
    assert customer.plan == "starter"


def test_an_unpaid_session_shows_activating(signed_in, fake_stripe, catalog, payer, customer):
    session = sf.session(
        cus=payer, mode="payment", user_id=customer.pk, status="open", payment_status="unpaid"
    )
    session["metadata"]["plan"] = "flowkit"
    fake_stripe.add(session)

    body = signed_in.get(f"/billing/success/?session_id={session['id']}").content.decode()

    assert "Activating" in body
    assert 'http-equiv="refresh"' in body


def test_success_page_with_billing_off_is_503_and_calls_nobody(
    signed_in, fake_stripe, settings, monkeypatch
):
    import socket

    settings.BILLING_ENABLED = False
    connects: list[object] = []
    monkeypatch.setattr(socket.socket, "connect", lambda sock, address: connects.append(address))

    response = signed_in.get("/billing/success/?session_id=cs_test_anything")

    assert response.status_code == 503
    assert "Payments are not set up on this site yet" in response.content.decode()
    assert fake_stripe.calls == []  # stripe-python sent no request...
    assert connects == []  # ...and nothing else opened a connection either


def test_switching_with_billing_off_is_503_and_calls_nobody(
    signed_in, deliver, fake_stripe, catalog, payer, settings
):
    _active_subscription(deliver, fake_stripe, payer, catalog["flowkit_monthly"])
    settings.BILLING_ENABLED = False
    fake_stripe.calls.clear()

    response = signed_in.post("/billing/switch/", {"plan": "launchpack"})

    assert response.status_code == 503
    assert fake_stripe.calls == []


def test_checkout_accepts_promotion_codes_and_asks_for_no_address_without_tax(
    signed_in, fake_stripe, catalog
):
    signed_in.post("/billing/checkout/", {"plan": "flowkit", "interval": "monthly"})

    [params] = fake_stripe.calls_to("POST", "/v1/checkout/sessions")
    assert params["allow_promotion_codes"] == "true"
    assert not any(k.startswith(("automatic_tax", "tax_id", "customer_update")) for k in params)
    assert "billing_address_collection" not in params


@pytest.mark.parametrize("interval", ["monthly", "oneoff"])
def test_with_automatic_tax_checkout_turns_on_stripe_tax_and_saves_the_address(
    signed_in, fake_stripe, catalog, settings, interval
):
    settings.BILLING_AUTOMATIC_TAX = True

    signed_in.post("/billing/checkout/", {"plan": "flowkit", "interval": interval})

    [params] = fake_stripe.calls_to("POST", "/v1/checkout/sessions")
    assert params["automatic_tax[enabled]"] == "true"
    assert params["billing_address_collection"] == "required"
    assert params["tax_id_collection[enabled]"] == "true"
    # The session names the customer: Stripe then requires the address to be saved on it.
    assert params["customer_update[address]"] == "auto"
    assert params["customer_update[name]"] == "auto"
