"""A Bacs debit the bank is processing (issue 27, defect 7): shown while it lasts, never
bought twice, cleared by the bank's answer, and a refusal told to the customer."""

from __future__ import annotations

import re

import pytest
from djstripe.models import Price

from billing.models import CheckoutOpened
from onboarding.models import OnboardingMessage
from tests.billing import stripe_fakes as sf

pytestmark = pytest.mark.django_db

PROCESSING = "£2,970.00 by Bacs Direct Debit for LaunchPack (once), processing: usually 3"


@pytest.fixture
def synced(catalog):
    for prc in catalog.values():
        Price.sync_from_stripe_data(prc)


@pytest.fixture
def signed_in(client, customer):
    client.force_login(customer)
    return client


def _text(response) -> str:
    """The page's words as a reader sees them (no space a tag left before punctuation)."""
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))
    return re.sub(r" ([:,.;/])", r"\1", text)


def _debit(fake_stripe, payer, prc, user_id) -> dict:
    """A one-off checkout paid by Bacs: complete, unpaid while the bank processes it."""
    pi = sf.payment_intent(cus=payer, amount=prc["unit_amount"])
    session = sf.session(
        cus=payer,
        mode="payment",
        user_id=user_id,
        payment_intent=pi["id"],
        amount=prc["unit_amount"],
        payment_status="unpaid",
    )
    session["metadata"].update(plan="launchpack", interval="oneoff")
    session["_line_items"] = [
        {
            "id": sf.new_id("li"),
            "object": "item",
            "price": prc,
            "quantity": 1,
            "amount_total": prc["unit_amount"],
            "currency": "gbp",
            "description": "x",
        }
    ]
    fake_stripe.add(pi, session)
    return session


def test_a_processing_debit_is_shown_and_blocks_buying_it_again(
    signed_in, synced, deliver, fake_stripe, catalog, payer, customer
):
    session = _debit(fake_stripe, payer, catalog["launchpack_oneoff"], customer.pk)
    deliver(sf.event("checkout.session.completed", session))

    assert PROCESSING in _text(signed_in.get("/billing/"))
    assert PROCESSING in _text(signed_in.get("/"))
    pricing = signed_in.get("/pricing/").content.decode()
    assert 'name="plan" value="launchpack"' not in pricing
    assert "payment for LaunchPack by bank debit is processing" in pricing
    fake_stripe.calls.clear()
    again = signed_in.post("/billing/checkout/", {"plan": "launchpack", "interval": "oneoff"})
    assert again.status_code == 409
    assert fake_stripe.calls_to("POST", "/v1/checkout/sessions") == []


def test_a_debit_that_succeeds_is_no_longer_pending(
    signed_in, synced, deliver, fake_stripe, catalog, payer, customer
):
    session = _debit(fake_stripe, payer, catalog["launchpack_oneoff"], customer.pk)
    deliver(sf.event("checkout.session.completed", session))
    session["payment_status"] = "paid"
    deliver(sf.event("checkout.session.async_payment_succeeded", session))

    customer.refresh_from_db()
    assert customer.plan == "launchpack"
    assert "processing" not in _text(signed_in.get("/billing/"))
    assert CheckoutOpened.objects.get().payment == CheckoutOpened.Payment.PAID


def test_a_failed_debit_is_cleared_and_the_customer_told_once(
    signed_in, synced, deliver, fake_stripe, catalog, payer, customer
):
    session = _debit(fake_stripe, payer, catalog["launchpack_oneoff"], customer.pk)
    deliver(sf.event("checkout.session.completed", session))
    failed = sf.event("checkout.session.async_payment_failed", session)
    deliver(failed)
    deliver(failed)  # a duplicate delivery
    # A late checkout.session.completed does not bring the payment back.
    deliver(sf.event("checkout.session.completed", session))

    assert "processing" not in _text(signed_in.get("/billing/"))
    [told] = OnboardingMessage.objects.filter(template="bank_debit_failed")
    assert told.context["amount"] == catalog["launchpack_oneoff"]["unit_amount"]
    assert "Pay once" in signed_in.get("/pricing/").content.decode()


def test_the_pricing_page_says_what_the_customer_has_and_what_is_processing(
    signed_in, synced, deliver, fake_stripe, catalog, payer, customer
):
    session = _debit(fake_stripe, payer, catalog["launchpack_oneoff"], customer.pk)
    deliver(sf.event("checkout.session.completed", session))

    text = _text(signed_in.get("/pricing/"))

    assert "What you have Starter, our free plan." in text
    assert PROCESSING in text
