"""Disputes on one-off purchases: decided from the dispute Stripe holds (dj-stripe re-reads
it for each event), so duplicated and reordered deliveries end right."""

from __future__ import annotations

import copy

import pytest

from billing.models import BillingAlert, OneOffPurchase, PlanChange
from devtools.stripe_sandbox.disputes import _dispute
from tests.billing import stripe_fakes as sf
from tests.billing.test_webhook_checkout import _oneoff_session

pytestmark = pytest.mark.django_db


@pytest.fixture
def bought(deliver, fake_stripe, catalog, payer, customer):
    """A paid LaunchPack one-off (£2,970.00) and its charge."""
    session, _pi, ch = _oneoff_session(
        fake_stripe, payer, catalog["launchpack_oneoff"], customer.pk
    )
    deliver(sf.event("checkout.session.completed", session))
    customer.refresh_from_db()
    assert customer.plan == "launchpack"
    return ch


def _open(fake_stripe, ch, reason="fraudulent"):
    dispute = _dispute(ch, reason)
    fake_stripe.add(dispute)
    return dispute


def test_a_dispute_stops_the_oneoff_and_alerts_staff_once(deliver, fake_stripe, bought, customer):
    dispute = _open(fake_stripe, bought)
    created = sf.event("charge.dispute.created", dispute)

    assert deliver(created).status_code == 200
    assert deliver(created).status_code == 200  # Stripe delivers twice
    assert deliver(sf.event("charge.dispute.funds_withdrawn", dispute)).status_code == 200

    customer.refresh_from_db()
    assert customer.plan == "starter"
    purchase = OneOffPurchase.objects.get()
    assert (purchase.dispute_id, purchase.dispute_status) == (dispute["id"], "needs_response")
    assert purchase.disputed_at is not None
    change = PlanChange.objects.latest("id")
    assert (change.source, change.new_plan) == ("dispute", "starter")
    assert PlanChange.objects.filter(source="dispute").count() == 1
    alert = BillingAlert.objects.get(kind=BillingAlert.Kind.DISPUTE)
    assert alert.stripe_id == dispute["id"]
    assert "£2,970.00 disputed on one-off purchase of LaunchPack" in alert.detail
    assert "reason: fraudulent" in alert.detail
    assert customer.email in alert.detail


def test_a_won_dispute_restores_the_oneoff(deliver, fake_stripe, bought, customer):
    dispute = _open(fake_stripe, bought)
    deliver(sf.event("charge.dispute.created", dispute))
    fake_stripe.objects[dispute["id"]]["status"] = "under_review"
    deliver(sf.event("charge.dispute.updated", fake_stripe.objects[dispute["id"]]))
    customer.refresh_from_db()
    assert customer.plan == "starter"  # under review is still open

    fake_stripe.objects[dispute["id"]]["status"] = "won"
    deliver(sf.event("charge.dispute.closed", fake_stripe.objects[dispute["id"]]))

    customer.refresh_from_db()
    assert customer.plan == "launchpack"
    assert OneOffPurchase.objects.get().dispute_status == "won"
    assert "Status: won." in BillingAlert.objects.get(kind="dispute").detail
    assert BillingAlert.objects.filter(kind="dispute").count() == 1


def test_a_lost_dispute_keeps_the_oneoff_off(deliver, fake_stripe, bought, customer):
    dispute = _open(fake_stripe, bought)
    deliver(sf.event("charge.dispute.created", dispute))
    fake_stripe.objects[dispute["id"]]["status"] = "lost"
    deliver(sf.event("charge.dispute.closed", fake_stripe.objects[dispute["id"]]))

    customer.refresh_from_db()
    assert customer.plan == "starter"
    assert OneOffPurchase.objects.get().dispute_status == "lost"


def test_a_late_created_event_after_the_win_leaves_the_plan(deliver, fake_stripe, bought, customer):
    dispute = _open(fake_stripe, bought)
    created = sf.event("charge.dispute.created", copy.deepcopy(dispute))  # status needs_response
    fake_stripe.objects[dispute["id"]]["status"] = "won"
    closed = sf.event("charge.dispute.closed", fake_stripe.objects[dispute["id"]])

    deliver(closed)
    deliver(created)  # arrives last, its payload stale: Stripe's dispute is won
    deliver(closed)

    customer.refresh_from_db()
    assert customer.plan == "launchpack"
    assert OneOffPurchase.objects.get().dispute_status == "won"
    assert BillingAlert.objects.filter(kind="dispute").count() == 1


def test_a_stale_won_payload_does_not_restore_a_lost_dispute(
    deliver, fake_stripe, bought, customer
):
    dispute = _open(fake_stripe, bought)
    claimed = {**dispute, "status": "won"}
    fake_stripe.objects[dispute["id"]]["status"] = "lost"

    deliver(sf.event("charge.dispute.closed", claimed))

    customer.refresh_from_db()
    assert customer.plan == "starter"


def test_a_dispute_on_a_subscription_payment_alerts_staff_and_keeps_the_plan(
    deliver, fake_stripe, catalog, payer, customer
):
    sub = sf.subscription(cus=payer, prc=catalog["flowkit_monthly"])
    session = sf.session(cus=payer, mode="subscription", user_id=customer.pk, sub=sub)
    fake_stripe.add(sub, session)
    deliver(sf.event("checkout.session.completed", session))
    pi = sf.payment_intent(cus=payer, amount=4900)
    ch = sf.charge(cus=payer, pi=pi)
    fake_stripe.add(pi, ch)
    dispute = _open(fake_stripe, ch, reason="product_not_received")

    assert deliver(sf.event("charge.dispute.created", dispute)).status_code == 200

    customer.refresh_from_db()
    assert customer.plan == "flowkit"
    alert = BillingAlert.objects.get(kind="dispute")
    assert "£49.00 disputed on a payment" in alert.detail
    assert "product not received" in alert.detail


def test_a_dispute_synced_before_the_purchase_was_recorded_still_stops_it(
    deliver, fake_stripe, catalog, payer, customer
):
    session, _pi, ch = _oneoff_session(
        fake_stripe, payer, catalog["launchpack_oneoff"], customer.pk
    )
    dispute = _open(fake_stripe, ch)
    deliver(sf.event("charge.dispute.created", dispute))  # before checkout.session.completed

    deliver(sf.event("checkout.session.completed", session))

    customer.refresh_from_db()
    assert customer.plan == "starter"
    assert BillingAlert.objects.filter(kind="dispute").count() == 1
