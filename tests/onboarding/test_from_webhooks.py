"""From Stripe's webhook to the welcome: once per activation, and never for a rollback."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from billing.models import PlanChange, WebhookDelivery
from billing.signals import plan_changed
from billing.webhook_queue import process_due
from onboarding.models import OnboardingMessage
from tests.billing import stripe_fakes as sf
from tests.onboarding.helpers import run_worker

# The worker runs in-process and closes the connection between tasks, as in production:
# each test commits for real.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def texting_customer(customer):
    """The paying customer, with a mobile number and SMS consent."""
    customer.phone = customer.phone_confirmed = "+447700900123"
    customer.sms_opt_in = True
    customer.save()
    return customer


@pytest.fixture
def completed_checkout(fake_stripe, catalog, payer, texting_customer):
    """Stripe's `checkout.session.completed` for a FlowKit subscription."""
    sub = sf.subscription(cus=payer, prc=catalog["flowkit_monthly"])
    session = sf.session(cus=payer, mode="subscription", user_id=texting_customer.pk, sub=sub)
    fake_stripe.add(sub, session)
    return sf.event("checkout.session.completed", session)


def test_the_same_webhook_delivered_twice_sends_one_email_and_one_sms(
    deliver,
    completed_checkout,
    texting_customer,
    twilio,
):
    assert deliver(completed_checkout).status_code == 200
    assert deliver(completed_checkout).status_code == 200
    run_worker()

    assert PlanChange.objects.count() == 1
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == [texting_customer.email]
    assert len(twilio.requests) == 1
    assert sorted(OnboardingMessage.objects.values_list("channel", "status")) == [
        ("email", "sent"),
        ("sms", "sent"),
    ]


def test_a_webhook_whose_handler_fails_after_the_plan_change_sends_nothing(
    client,
    deliver,
    completed_checkout,
    texting_customer,
    twilio,
):
    def fail_afterwards(**kwargs: object) -> None:
        raise RuntimeError("handler failed after the plan change")

    # Connected after onboarding's receiver: the welcome is queued, then the handler fails.
    plan_changed.connect(fail_afterwards, dispatch_uid="test-fail-afterwards")
    client.raise_request_exception = False
    try:
        response = deliver(completed_checkout)
    finally:
        plan_changed.disconnect(dispatch_uid="test-fail-afterwards")
    run_worker()

    # Acknowledged; the processing rolled back with its messages, and waits for a retry.
    assert response.status_code == 200
    delivery = WebhookDelivery.objects.get()
    assert (delivery.state, delivery.attempts) == ("pending", 1)
    assert "handler failed after the plan change" in delivery.last_error
    assert delivery.next_attempt_at is not None
    texting_customer.refresh_from_db()
    assert texting_customer.plan == "starter"
    assert not PlanChange.objects.exists()
    assert not OnboardingMessage.objects.exists()
    assert mail.outbox == []
    assert twilio.requests == []

    # The retry, once the handler is fixed, activates the plan and welcomes once.
    WebhookDelivery.objects.update(next_attempt_at=None)
    assert process_due() == 1
    run_worker()
    texting_customer.refresh_from_db()
    assert texting_customer.plan == "flowkit"
    assert PlanChange.objects.count() == 1
    assert OnboardingMessage.objects.filter(channel="email").count() == 1


def test_a_plan_restored_after_a_failed_payment_is_not_welcomed_again(
    deliver,
    fake_stripe,
    catalog,
    payer,
    completed_checkout,
    texting_customer,
    twilio,
):
    deliver(completed_checkout)
    sub = fake_stripe.objects[completed_checkout["data"]["object"]["subscription"]]
    # The renewal failed nine days ago: past the grace period, the plan goes...
    sub["status"] = "past_due"
    sub["items"]["data"][0]["current_period_start"] = int(
        (timezone.now() - timedelta(days=9)).timestamp()
    )
    deliver(sf.event("customer.subscription.updated", sub))
    texting_customer.refresh_from_db()
    assert texting_customer.plan == "starter"
    # ...and comes back when a retry pays the invoice.
    sub["status"] = "active"
    invoice = sf.invoice(cus=payer, sub=sub)
    fake_stripe.add(invoice)
    deliver(sf.event("invoice.paid", invoice))
    run_worker()

    texting_customer.refresh_from_db()
    assert texting_customer.plan == "flowkit"
    assert PlanChange.objects.filter(new_plan="flowkit").count() == 2
    assert len(mail.outbox) == 1  # the welcome of the first activation only
    assert len(twilio.requests) == 1
    welcome = OnboardingMessage.objects.filter(template="welcome")
    assert welcome.count() == 2  # one email, one SMS
    # The plan ended past the grace period, but was back before "ended" went out.
    [ended] = OnboardingMessage.objects.filter(template="plan_ended")
    assert ended.status == "skipped"
    assert "the plan is now FlowKit" in ended.last_error
