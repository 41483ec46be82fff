from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from djstripe.models import Subscription

from accounts.models import User
from billing.models import BillingAlert, PlanChange
from tests.billing import stripe_fakes as sf
from tests.billing.webhooks import assert_processed

pytestmark = pytest.mark.django_db


def _failing_invoice(fake_stripe, payer, sub, *, days_ago: float) -> dict:
    """The open renewal invoice Stripe is retrying, its first attempt `days_ago`."""
    failed = int((timezone.now() - timedelta(days=days_ago)).timestamp())
    invoice = sf.invoice(cus=payer, sub=sub, status="open")
    invoice.update(
        attempt_count=1,
        next_payment_attempt=failed + 9 * 86400,
        status_transitions={"finalized_at": failed, "paid_at": None, "voided_at": None},
    )
    fake_stripe.add(invoice)
    sub["latest_invoice"] = invoice["id"]
    return invoice


def test_subscription_created_puts_the_user_on_its_plan(deliver, customer, subscribe):
    sub = subscribe("flowkit", delivered=False)

    response = deliver(sf.event("customer.subscription.created", sub))

    assert response.status_code == 200
    customer.refresh_from_db()
    assert customer.plan == "flowkit"
    change = PlanChange.objects.get()
    assert (change.old_plan, change.new_plan, change.source) == (
        "starter",
        "flowkit",
        "subscription",
    )
    assert change.stripe_event_id.startswith("evt_")


def test_the_same_event_delivered_twice_changes_the_plan_once(deliver, customer, subscribe):
    event = sf.event("customer.subscription.created", subscribe("flowkit", delivered=False))

    assert deliver(event).status_code == 200
    assert deliver(event).status_code == 200

    assert PlanChange.objects.count() == 1


def test_deleted_then_a_stale_updated_leaves_starter(deliver, customer, subscribe):
    sub = subscribe("launchpack", delivered=False)
    deliver(sf.event("customer.subscription.created", sub))
    stale = sf.event("customer.subscription.updated", sub)  # snapshot while still active
    sub.update(status="canceled", canceled_at=sf.NOW, ended_at=sf.NOW)

    deliver(sf.event("customer.subscription.deleted", sub))
    deliver(stale)

    customer.refresh_from_db()
    assert customer.plan == "starter"
    assert list(PlanChange.objects.order_by("id").values_list("new_plan", flat=True)) == [
        "launchpack",
        "starter",
    ]


def test_upgrade_through_an_update_moves_the_plan_up(deliver, catalog, customer, subscribe):
    sub = subscribe("flowkit", delivered=False)
    deliver(sf.event("customer.subscription.created", sub))
    sub["items"]["data"][0]["price"] = catalog["launchpack_monthly"]

    deliver(sf.event("customer.subscription.updated", sub))

    customer.refresh_from_db()
    assert customer.plan == "launchpack"


def test_unknown_price_leaves_the_plan_answers_200_and_is_recorded(
    deliver, fake_stripe, customer, subscribe
):
    deliver(
        sf.event(
            "customer.subscription.created",
            subscribe("flowkit", delivered=False),
        )
    )
    stray_product = sf.product(name="Legacy")
    stray = sf.price(prod=stray_product, lookup_key="legacy_gold")
    fake_stripe.add(stray_product, stray)
    sub = subscribe(price=stray, delivered=False)

    response = deliver(sf.event("customer.subscription.created", sub))

    assert response.status_code == 200
    customer.refresh_from_db()
    assert customer.plan == "flowkit"
    alert = BillingAlert.objects.get()
    assert (alert.kind, alert.stripe_id) == ("unknown_price", stray["id"])


def test_past_due_inside_the_grace_period_keeps_the_plan(
    deliver, fake_stripe, payer, customer, subscribe
):
    sub = subscribe("flowkit", delivered=False)
    deliver(sf.event("customer.subscription.created", sub))
    sub["status"] = "past_due"
    _failing_invoice(fake_stripe, payer, sub, days_ago=6)

    updated = sf.event("customer.subscription.updated", sub)
    assert_processed(deliver(updated), updated)

    # The failed renewal was seen (the subscription is stored past_due), and is in grace.
    assert Subscription.objects.get(id=sub["id"]).status == "past_due"
    customer.refresh_from_db()
    assert customer.plan == "flowkit"


def test_past_due_after_the_grace_period_drops_to_starter(
    deliver, fake_stripe, payer, customer, subscribe
):
    sub = subscribe("flowkit", delivered=False)
    deliver(sf.event("customer.subscription.created", sub))
    sub["status"] = "past_due"
    _failing_invoice(fake_stripe, payer, sub, days_ago=8)

    deliver(sf.event("customer.subscription.updated", sub))

    customer.refresh_from_db()
    assert customer.plan == "starter"
    # Not "no active subscription": it is past_due in Stripe, its grace has ended.
    reason = PlanChange.objects.latest("id").reason
    assert reason.startswith(f"subscription {sub['id']} past_due: the 7-day grace")


def test_subscription_of_an_unknown_customer_is_recorded_and_answered_200(
    deliver, fake_stripe, catalog
):
    stranger = sf.customer(email="nobody@example.com")
    fake_stripe.add(stranger)
    sub = sf.subscription(cus=stranger, prc=catalog["flowkit_monthly"])
    fake_stripe.add(sub)

    assert deliver(sf.event("customer.subscription.created", sub)).status_code == 200

    assert not User.objects.exists()
    assert BillingAlert.objects.filter(kind="no_user").exists()


def _old_layout(sub, *, period_start):
    """`sub` as API versions before 2025-03-31.basil lay it out: the period on the
    subscription, none on its items."""
    for item in sub["items"]["data"]:
        item.pop("current_period_start", None)
        item.pop("current_period_end", None)
    sub.update(current_period_start=period_start, current_period_end=period_start + 30 * 86400)
    return sub


def test_past_due_in_the_old_layout_keeps_the_plan_inside_the_grace_period(
    deliver, fake_stripe, payer, customer, subscribe
):
    sub = subscribe("flowkit", delivered=False)
    deliver(sf.event("customer.subscription.created", sub))
    _old_layout(sub, period_start=int((timezone.now() - timedelta(days=6)).timestamp()))
    sub["status"] = "past_due"
    invoice = _failing_invoice(fake_stripe, payer, sub, days_ago=6)
    invoice.update(parent=None, subscription=sub["id"])  # the old layout

    updated = sf.event("customer.subscription.updated", sub)
    assert_processed(deliver(updated), updated)

    # The failed renewal was seen (the subscription is stored past_due), and is in grace.
    assert Subscription.objects.get(id=sub["id"]).status == "past_due"
    customer.refresh_from_db()
    assert customer.plan == "flowkit"


def test_an_old_layout_invoice_resyncs_its_subscription(
    deliver, fake_stripe, payer, customer, subscribe
):
    failed_at = int((timezone.now() - timedelta(days=9)).timestamp())
    sub = subscribe("flowkit", delivered=False, status="past_due")
    _old_layout(sub, period_start=failed_at)
    deliver(sf.event("customer.subscription.updated", sub))
    customer.refresh_from_db()
    assert customer.plan == "starter"  # past the grace period

    sub["status"] = "active"  # the retried payment went through; Stripe says so
    invoice = sf.invoice(cus=payer, sub=sub)
    invoice.update(parent=None, subscription=sub["id"])  # the old layout
    fake_stripe.add(invoice)
    assert deliver(sf.event("invoice.paid", invoice)).status_code == 200

    customer.refresh_from_db()
    assert customer.plan == "flowkit"
    assert PlanChange.objects.latest("id").source == "invoice"


def test_a_scheduled_downgrade_seen_first_by_its_invoice_is_a_subscription_change(
    deliver, fake_stripe, catalog, payer, customer, subscribe
):
    sub = subscribe("launchpack", delivered=False)
    deliver(sf.event("customer.subscription.created", sub))
    # At the renewal the schedule moved the subscription to FlowKit; the renewal's
    # invoice.paid comes before customer.subscription.updated.
    lowered = sf.subscription(cus=payer, prc=catalog["flowkit_monthly"], id=sub["id"])
    fake_stripe.add(lowered)
    renewal = sf.invoice(cus=payer, sub=lowered, status="paid")
    fake_stripe.add(renewal)

    deliver(sf.event("invoice.paid", renewal))

    change = PlanChange.objects.latest("id")
    assert (change.old_plan, change.new_plan) == ("launchpack", "flowkit")
    # Not "Invoice": the invoice changed nothing, the subscription's price did.
    assert change.source == PlanChange.Source.SUBSCRIPTION
    assert change.reason.startswith("the subscription's price changed to a lower plan; now:")
