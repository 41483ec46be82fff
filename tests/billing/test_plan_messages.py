"""One message per change of plan (billing.messages), queued by onboarding as decided:
an upgrade, a downgrade taking effect, a comp, a comp ending and a resumed cancellation
each say what changed, from when and Stripe's amount; never the first-purchase welcome
again, never two that contradict each other (issue 27, defects 12 and 21)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import stripe
from django.utils import timezone

from billing.models import NextCharge, PlanChange, PlanOverride
from billing.money import money
from billing.overrides import override_grant, override_revoke
from billing.stripe_api import api_kwargs
from billing.tasks import overrides_sweep
from onboarding.models import OnboardingMessage
from onboarding.notices import notice_email_render, notice_sms_render
from onboarding.outbox import _skip_reason
from onboarding.welcome import date_long
from tests.billing import stripe_fakes as sf

pytestmark = pytest.mark.django_db

# Subscriptions start half-way through their month.
HALF_A_MONTH_AGO = sf.NOW - 15 * 86400
CARD_FAILS_LATER = "4000000000000341"


@pytest.fixture
def signed_in(client, customer):
    client.force_login(customer)
    return client


def _emails(user) -> list[OnboardingMessage]:
    return list(OnboardingMessage.objects.filter(user=user, channel="email").order_by("pk"))


def _upgrade(signed_in) -> None:
    page = signed_in.get("/billing/switch/?plan=launchpack").content.decode()
    quote = re.search(r'name="quote" value="([^"]+)"', page).group(1)
    signed_in.post("/billing/switch/", {"plan": "launchpack", "quote": quote})


def test_an_upgrade_tells_what_stripe_charged_and_is_not_welcomed_again(
    signed_in, customer, subscribe
):
    sub = subscribe("flowkit", period_start=HALF_A_MONTH_AGO)
    [welcome] = _emails(customer)
    assert welcome.template == "welcome"
    assert welcome.plan == "flowkit"

    _upgrade(signed_in)

    customer.refresh_from_db()
    assert customer.plan == "launchpack"
    [_, upgraded] = _emails(customer)  # one message for the upgrade, not a welcome
    assert (upgraded.template, upgraded.plan) == ("plan_upgraded", "launchpack")
    [invoice] = stripe.Invoice.list(subscription=sub["id"], **api_kwargs()).data
    assert invoice["billing_reason"] == "subscription_update"
    assert upgraded.context["amount_paid"] == invoice["amount_paid"] > 0
    email = notice_email_render(upgraded)
    assert email.subject == "You're now on SmartFlow LaunchPack"
    charged = money(invoice["amount_paid"], invoice["currency"])
    assert f"{charged} was charged for it on" in email.text
    assert "from 'FlowKit' to 'LaunchPack'" in email.text
    assert "Welcome" not in email.text


def test_a_declined_upgrade_promises_no_retry_and_its_payment_later_tells_once(
    signed_in, deliver, fake_stripe, customer, subscribe
):
    sub = subscribe("flowkit", period_start=HALF_A_MONTH_AGO, card=CARD_FAILS_LATER)
    _upgrade(signed_in)
    stored = fake_stripe.objects[sub["id"]]
    assert stored["pending_update"] is not None
    invoice = fake_stripe.objects[stored["latest_invoice"]]
    invoice.update(next_payment_attempt=sf.NOW + 3 * 86400)
    deliver(sf.event("customer.subscription.updated", stored))
    deliver(sf.event("invoice.payment_failed", invoice))

    declined = OnboardingMessage.objects.get(
        user=customer, channel="email", template__in=["payment_failed", "upgrade_declined"]
    )
    assert declined.template == "upgrade_declined"
    email = notice_email_render(declined)
    assert email.subject == "Your SmartFlow upgrade did not go through"
    assert "We will try again" not in email.text
    assert "You are still on 'FlowKit'" in email.text
    assert f"before {date_long(stored['pending_update']['expires_at'])}" in email.text

    # Paid on the hosted page before it lapses: the upgrade is the one message.
    stored["items"]["data"] = stored["pending_update"]["subscription_items"]
    stored["pending_update"] = None
    invoice.update(status="paid", amount_paid=invoice["amount_due"], amount_remaining=0)
    deliver(sf.event("invoice.paid", invoice))
    deliver(sf.event("customer.subscription.updated", stored))

    customer.refresh_from_db()
    assert customer.plan == "launchpack"
    templates = [m.template for m in _emails(customer)]
    assert templates == ["welcome", "upgrade_declined", "plan_upgraded"]


def test_a_downgrade_taking_effect_tells_the_date_and_stripes_next_charge(
    signed_in, deliver, fake_stripe, catalog, customer, subscribe
):
    sub = subscribe("launchpack", period_start=HALF_A_MONTH_AGO)
    signed_in.post("/billing/downgrade/", {"plan": "flowkit"})
    assert [m.template for m in _emails(customer)] == ["welcome"]  # the request: no mail

    stored = fake_stripe.objects[sub["id"]]
    stored["items"]["data"][0]["price"] = catalog["flowkit_monthly"]
    renewed = sf.event("customer.subscription.updated", stored)
    deliver(renewed)
    deliver(renewed)  # delivered twice: told once

    customer.refresh_from_db()
    assert customer.plan == "flowkit"
    [_, downgraded] = _emails(customer)
    assert (downgraded.template, downgraded.plan) == ("plan_downgraded", "flowkit")
    charge = NextCharge.objects.get(subscription_id=sub["id"])
    assert downgraded.context["next_amount"] == charge.amount_due
    email = notice_email_render(downgraded)
    assert email.subject == "Your SmartFlow plan changed to FlowKit"
    start = stored["items"]["data"][0]["current_period_start"]
    assert f"from 'LaunchPack' to 'FlowKit' from {date_long(start)}" in email.text
    next_on = date_long(int(charge.due_at.timestamp()))
    assert f"Your next payment: {money(charge.amount_due, charge.currency)} on {next_on}" in (
        email.text
    )


def test_a_downgrade_whose_next_charge_is_unknown_names_no_amount(
    signed_in, deliver, fake_stripe, catalog, customer, subscribe
):
    sub = subscribe("launchpack", period_start=HALF_A_MONTH_AGO)
    stored = fake_stripe.objects[sub["id"]]
    stored["items"]["data"][0]["price"] = catalog["flowkit_monthly"]
    # Set to end: Stripe will charge nothing more, so there is no preview to quote.
    stored.update(cancel_at_period_end=True)
    deliver(sf.event("customer.subscription.updated", stored))

    downgraded = OnboardingMessage.objects.get(user=customer, template="plan_downgraded")
    assert "next_amount" not in downgraded.context
    assert "next payment" not in notice_email_render(downgraded).text


def test_resuming_a_cancellation_tells_it_is_undone_with_stripes_renewal(
    signed_in, deliver, fake_stripe, customer, subscribe
):
    sub = subscribe("flowkit", period_start=HALF_A_MONTH_AGO)
    signed_in.post("/billing/cancel/")
    stored = fake_stripe.objects[sub["id"]]
    ends = stored["cancel_at"] or stored["items"]["data"][0]["current_period_end"]
    deliver(
        sf.event(
            "customer.subscription.updated",
            stored,
            previous={"cancel_at_period_end": False, "cancel_at": None},
        )
    )
    signed_in.post("/billing/resume/")
    stored = fake_stripe.objects[sub["id"]]
    resumed_event = sf.event(
        "customer.subscription.updated",
        stored,
        previous={"cancel_at_period_end": True, "cancel_at": ends},
    )
    deliver(resumed_event)
    deliver(resumed_event)  # delivered twice: told once

    cancelled, resumed = _emails(customer)[1:]
    assert (cancelled.template, resumed.template) == (
        "cancellation_scheduled",
        "subscription_resumed",
    )
    # Both queued; only the one still true is sent.
    assert _skip_reason(cancelled) == "the cancellation was undone (the subscription was resumed)"
    assert _skip_reason(resumed) == ""
    charge = NextCharge.objects.get(subscription_id=sub["id"])
    email = notice_email_render(resumed)
    assert email.subject == "Your SmartFlow cancellation is undone"
    renews = date_long(int(charge.due_at.timestamp()))
    assert f"It renews on {renews} for {money(charge.amount_due, charge.currency)}." in email.text


def test_a_resume_told_then_cancelled_again_is_not_sent(deliver, fake_stripe, customer, subscribe):
    sub = subscribe("flowkit", period_start=HALF_A_MONTH_AGO)
    stored = fake_stripe.objects[sub["id"]]
    deliver(
        sf.event(
            "customer.subscription.updated",
            stored,
            previous={"cancel_at_period_end": True, "cancel_at": sf.NOW + 86400},
        )
    )
    [resumed] = OnboardingMessage.objects.filter(template="subscription_resumed")
    stored.update(cancel_at_period_end=True, cancel_at=sf.NOW + 86400)
    deliver(sf.event("customer.subscription.updated", stored, previous={"metadata": {}}))

    assert _skip_reason(resumed) == "the subscription was cancelled again, or has ended"


def test_a_comp_told_by_staff_says_complimentary_until_when(customer, staff_user):
    customer.phone, customer.sms_opt_in = "+447700900123", True
    customer.save()
    until = timezone.now() + timedelta(days=10)
    override_grant(
        user=customer,
        plan="flowkit",
        reason="goodwill",
        expires_at=until,
        notify=True,
        actor=staff_user,
    )

    [email, sms] = OnboardingMessage.objects.filter(user=customer).order_by("channel")
    assert (email.template, sms.template) == ("comp_granted", "comp_granted")
    text = notice_email_render(email)
    assert text.subject == "Complimentary SmartFlow FlowKit"
    assert f"free of charge until {date_long(int(until.timestamp()))}" in text.text
    assert notice_sms_render(sms).startswith("SmartFlow: complimentary 'FlowKit' until")


def test_a_comp_staff_chose_not_to_tell_is_silent(customer, staff_user):
    override_grant(
        user=customer,
        plan="flowkit",
        reason="test",
        expires_at=None,
        notify=False,
        actor=staff_user,
    )

    assert not OnboardingMessage.objects.exists()


def test_a_comp_running_out_tells_the_customer_once(customer, staff_user):
    override = override_grant(
        user=customer,
        plan="launchpack",
        reason="trial",
        expires_at=timezone.now() + timedelta(days=10),
        notify=False,
        actor=staff_user,
    )
    ended_at = timezone.now() - timedelta(minutes=1)
    PlanOverride.objects.filter(pk=override.pk).update(expires_at=ended_at)

    assert overrides_sweep.call() == 1
    assert overrides_sweep.call() == 0

    [ended] = OnboardingMessage.objects.filter(user=customer)
    assert (ended.template, ended.plan) == ("comp_ended", "starter")
    email = notice_email_render(ended)
    assert email.subject == "Your complimentary SmartFlow LaunchPack has ended"
    assert f"ended on {date_long(int(ended_at.timestamp()))}" in email.text
    assert ended.plan_change_id == PlanChange.objects.first().pk


def test_a_comp_revoked_by_staff_tells_nothing(customer, staff_user):
    override = override_grant(
        user=customer,
        plan="flowkit",
        reason="oops",
        expires_at=None,
        notify=False,
        actor=staff_user,
    )
    override_revoke(override=override, actor=staff_user)

    customer.refresh_from_db()
    assert customer.plan == "starter"
    assert not OnboardingMessage.objects.exists()
