from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry
from djstripe.models import Charge

from accounts.models import User
from billing.models import OneOffPurchase, PlanChange
from tests.billing import stripe_fakes as sf
from tests.billing.webhooks import assert_processed
from tests.helpers import PASSWORD, email_confirmed

pytestmark = pytest.mark.django_db


def _oneoff_session(fake_stripe, payer, prc, user_id):
    pi = sf.payment_intent(cus=payer, amount=prc["unit_amount"])
    ch = sf.charge(cus=payer, pi=pi)
    session = sf.session(
        cus=payer,
        mode="payment",
        user_id=user_id,
        payment_intent=pi["id"],
        amount=prc["unit_amount"],
    )
    # What the session sold, as the sandbox keeps it (its /line_items answer).
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
    fake_stripe.add(pi, ch, session)
    return session, pi, ch


def test_subscription_checkout_completed_grants_the_plan(
    deliver, fake_stripe, catalog, payer, customer
):
    sub = sf.subscription(cus=payer, prc=catalog["flowkit_monthly"])
    session = sf.session(cus=payer, mode="subscription", user_id=customer.pk, sub=sub)
    fake_stripe.add(sub, session)

    assert deliver(sf.event("checkout.session.completed", session)).status_code == 200

    customer.refresh_from_db()
    assert customer.plan == "flowkit"
    assert PlanChange.objects.get().source == "checkout"


def test_oneoff_checkout_grants_the_plan_for_good_and_a_refund_takes_it_back(
    deliver, fake_stripe, catalog, payer, customer
):
    session, pi, ch = _oneoff_session(fake_stripe, payer, catalog["launchpack_oneoff"], customer.pk)

    deliver(sf.event("checkout.session.completed", session))
    customer.refresh_from_db()
    assert customer.plan == "launchpack"
    purchase = OneOffPurchase.objects.get()
    assert (purchase.plan, purchase.amount, purchase.payment_intent_id) == (
        "launchpack",
        297000,
        pi["id"],
    )

    ch.update(refunded=True, amount_refunded=ch["amount"])
    assert deliver(sf.event("charge.refunded", ch)).status_code == 200

    customer.refresh_from_db()
    assert customer.plan == "starter"
    assert PlanChange.objects.latest("id").source == "refund"


def test_a_partial_refund_keeps_the_plan(deliver, fake_stripe, catalog, payer, customer):
    session, _pi, ch = _oneoff_session(fake_stripe, payer, catalog["flowkit_oneoff"], customer.pk)
    deliver(sf.event("checkout.session.completed", session))

    ch.update(amount_refunded=1000)
    refunded = sf.event("charge.refunded", ch)
    assert_processed(deliver(refunded), refunded)

    # The refund was seen (the charge re-read from Stripe says 1000 pence went back) ...
    assert Charge.objects.get(id=ch["id"]).amount_refunded == 1000
    # ... and, being partial, takes neither the purchase nor the plan.
    assert OneOffPurchase.objects.get().refunded_at is None
    customer.refresh_from_db()
    assert customer.plan == "flowkit"


def test_a_refund_the_payload_claims_but_stripe_denies_keeps_the_plan(
    deliver, fake_stripe, catalog, payer, customer
):
    session, _pi, ch = _oneoff_session(fake_stripe, payer, catalog["flowkit_oneoff"], customer.pk)
    deliver(sf.event("checkout.session.completed", session))

    # Stripe's charge (what dj-stripe re-reads) stays unrefunded; only the payload lies.
    claimed = {**ch, "refunded": True, "amount_refunded": ch["amount"]}
    assert deliver(sf.event("charge.refunded", claimed)).status_code == 200

    customer.refresh_from_db()
    assert customer.plan == "flowkit"
    assert OneOffPurchase.objects.get().refunded_at is None


def test_a_refund_stripe_reports_takes_the_plan_even_if_the_payload_says_otherwise(
    deliver, fake_stripe, catalog, payer, customer
):
    session, _pi, ch = _oneoff_session(fake_stripe, payer, catalog["flowkit_oneoff"], customer.pk)
    deliver(sf.event("checkout.session.completed", session))

    stale = dict(ch)  # the payload as it was before the refund
    ch.update(refunded=True, amount_refunded=ch["amount"])
    assert deliver(sf.event("charge.refunded", stale)).status_code == 200

    customer.refresh_from_db()
    assert customer.plan == "starter"
    assert OneOffPurchase.objects.get().refunded_at is not None


def test_unpaid_async_session_grants_nothing_until_it_succeeds(
    deliver, fake_stripe, catalog, payer, customer
):
    session, _pi, _ch = _oneoff_session(fake_stripe, payer, catalog["flowkit_oneoff"], customer.pk)
    session["payment_status"] = "unpaid"

    deliver(sf.event("checkout.session.completed", session))
    customer.refresh_from_db()
    assert customer.plan == "starter"

    session["payment_status"] = "paid"
    deliver(sf.event("checkout.session.async_payment_succeeded", session))
    customer.refresh_from_db()
    assert customer.plan == "flowkit"


def test_async_payment_failed_grants_nothing(deliver, fake_stripe, catalog, payer, customer):
    session, _pi, _ch = _oneoff_session(fake_stripe, payer, catalog["flowkit_oneoff"], customer.pk)
    session["payment_status"] = "unpaid"

    assert deliver(sf.event("checkout.session.async_payment_failed", session)).status_code == 200

    customer.refresh_from_db()
    assert customer.plan == "starter"
    assert not OneOffPurchase.objects.exists()


def test_a_payer_without_an_account_gets_one(deliver, fake_stripe, catalog):
    stranger = sf.customer(email="New.Buyer@Example.com")
    fake_stripe.add(stranger)
    session, _pi, _ch = _oneoff_session(fake_stripe, stranger, catalog["flowkit_oneoff"], None)

    assert deliver(sf.event("checkout.session.completed", session)).status_code == 200

    user = User.objects.get(email="new.buyer@example.com")
    assert user.plan == "flowkit"
    assert not user.has_usable_password()


def test_a_pre_registered_unconfirmed_account_does_not_collect_the_owners_payment(
    deliver, fake_stripe, catalog, client
):
    """Someone signs up with the victim's address (never confirming it); the victim then
    pays at checkout without an account of theirs. The sign-up's password stops working
    and its mobile number goes; the plan is the address's owner's, reached through the
    welcome email's set-password link."""
    squatter = User.objects.create_user(
        "victim@example.com", PASSWORD, phone="+447911123456", sms_opt_in=True
    )
    victim = sf.customer(email="Victim@Example.com")
    fake_stripe.add(victim)
    session, _pi, _ch = _oneoff_session(fake_stripe, victim, catalog["flowkit_oneoff"], None)

    assert deliver(sf.event("checkout.session.completed", session)).status_code == 200

    account = User.objects.get(email="victim@example.com")
    assert account.pk == squatter.pk  # one row per address
    assert account.plan == "flowkit"
    assert not account.has_usable_password()
    assert (str(account.phone), account.sms_opt_in) == ("", False)
    login = client.post("/login/", {"login": "victim@example.com", "password": PASSWORD})
    assert login.status_code == 200  # refused: the form again
    assert "unconfirmed" in LogEntry.objects.get(object_id=str(account.pk)).change_message


def test_a_confirmed_account_with_the_payers_email_gets_the_payment(deliver, fake_stripe, catalog):
    owner = email_confirmed(User.objects.create_user("owner@example.com", PASSWORD))
    payer = sf.customer(email="owner@example.com")
    fake_stripe.add(payer)
    session, _pi, _ch = _oneoff_session(fake_stripe, payer, catalog["flowkit_oneoff"], None)

    deliver(sf.event("checkout.session.completed", session))

    owner.refresh_from_db()
    assert owner.plan == "flowkit"
    assert owner.check_password(PASSWORD)


def test_the_payers_email_is_matched_in_its_normalised_form(deliver, fake_stripe, catalog):
    owner = email_confirmed(User.objects.create_user("owner@example.com", PASSWORD))
    # Fullwidth letters normalise to the real address (NFKC): that is the owner's.
    payer = sf.customer(email="ＯＷＮＥＲ@example.com")  # noqa: RUF001 (fullwidth, on purpose)
    fake_stripe.add(payer)
    session, _pi, _ch = _oneoff_session(fake_stripe, payer, catalog["flowkit_oneoff"], None)

    deliver(sf.event("checkout.session.completed", session))

    owner.refresh_from_db()
    assert owner.plan == "flowkit"
    assert User.objects.count() == 1


def test_invoice_paid_and_failed_follow_the_subscription(
    deliver, fake_stripe, catalog, payer, customer
):
    sub = sf.subscription(cus=payer, prc=catalog["flowkit_monthly"], status="incomplete")
    fake_stripe.add(sub)
    deliver(sf.event("customer.subscription.created", sub))
    customer.refresh_from_db()
    assert customer.plan == "starter"

    sub["status"] = "active"  # Stripe activates the subscription when the invoice is paid
    paid = sf.invoice(cus=payer, sub=sub)
    fake_stripe.add(paid)
    deliver(sf.event("invoice.paid", paid))
    customer.refresh_from_db()
    assert customer.plan == "flowkit"
    assert PlanChange.objects.latest("id").source == "invoice"

    sub["status"] = "unpaid"
    failed = sf.invoice(cus=payer, sub=sub, status="open")
    fake_stripe.add(failed)
    deliver(sf.event("invoice.payment_failed", failed))
    customer.refresh_from_db()
    assert customer.plan == "starter"
