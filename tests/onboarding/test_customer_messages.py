"""Every moment after the first payment tells the customer once, through the sandbox's
webhooks delivered as Stripe delivers them (late, shuffled, some twice), then sent by the
real worker: failed renewals (each attempt), 3-D Secure, recovery, cancellation, the plan
ending and refunds. The subject, the words that matter and Reply-To are checked."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from io import StringIO

import pytest
import stripe
from django.conf import settings
from django.core import mail
from django.core.management import call_command

from accounts.models import User
from billing.models import NextCharge
from devtools.stripe_sandbox import actions, collection, store
from devtools.stripe_sandbox.client import SandboxHTTPClient
from devtools.stripe_sandbox.delivery import deliver_pending
from devtools.stripe_sandbox.models import Delivery
from onboarding.models import OnboardingMessage
from tests.onboarding.helpers import SITE_URL, run_worker
from tests.sandbox_app import app_transport

# The worker closes its connection between tasks, as in production: commit for real.
pytestmark = pytest.mark.django_db(transaction=True)

CARD_OK = "4242424242424242"
CARD_RENEWAL_FAILS = "4000000000000341"
CARD_3DS = "4000002760003184"
DAY = 86400


@pytest.fixture(autouse=True)
def sandbox(settings, monkeypatch, stripe_delivery):
    monkeypatch.setattr(stripe, "api_key", settings.STRIPE_TEST_SECRET_KEY)
    previous = stripe.default_http_client
    stripe.default_http_client = SandboxHTTPClient()
    call_command("stripe_catalog", stdout=StringIO())
    yield
    stripe.default_http_client = previous


def _deliver(client) -> None:
    report = deliver_pending(transport=app_transport(client))
    assert report.failed == 0


def _send(client) -> list[mail.EmailMessage]:
    """Deliver the pending webhooks, run the worker; the emails sent, and clear them."""
    _deliver(client)
    run_worker()
    sent = list(mail.outbox)
    mail.outbox.clear()
    return sent


def _subscribe(client, user: User, card: str, *, plan: str = "flowkit") -> str:
    client.force_login(user)
    response = client.post("/billing/checkout/", {"plan": plan, "interval": "monthly"})
    session_id = response["Location"].rstrip("/").split("/")[-1]
    actions.checkout_pay(session_id=session_id, card_number=card, authenticated=True)
    return stripe.checkout.Session.retrieve(session_id).subscription


def _only(sent: list, subject: str) -> mail.EmailMessage:
    matching = [m for m in sent if m.subject == subject]
    assert len(matching) == 1, [m.subject for m in sent]
    return matching[0]


def _day(ts: int) -> str:
    day = datetime.fromtimestamp(ts, tz=UTC)
    return f"{day.day} {day:%B %Y}"


def _open_invoice(sub_id: str) -> dict:
    return next(
        i
        for i in store.all_of("invoice")
        if i["status"] == "open" and collection._subscription_id(i) == sub_id
    )


def _html_text(message: mail.EmailMessage) -> str:
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html"
    return html


def test_failed_renewal_tells_each_attempt_then_payment_received(client, buyer, twilio):
    sub_id = _subscribe(client, buyer, CARD_RENEWAL_FAILS)
    assert [m.subject for m in _send(client)] == ["Your SmartFlow plan is live"]
    twilio.requests.clear()

    actions.clock_advance(days=31, hours=1)  # the renewal is charged an hour on: it fails
    sent = _send(client)
    invoice = _open_invoice(sub_id)
    failed = _only(sent, "Your SmartFlow payment failed")
    assert len(sent) == 1
    assert failed.to == [buyer.email]
    assert failed.reply_to == [settings.SUPPORT_EMAIL]
    assert failed.from_email == settings.DEFAULT_FROM_EMAIL
    assert "We could not take your payment of £49.00" in failed.body
    grace_end = invoice["status_transitions"]["finalized_at"] + 7 * DAY
    assert f"Your plan's features stop on {_day(grace_end)} unless it is paid" in failed.body
    assert f"We will try again on {_day(invoice['next_payment_attempt'])}." in failed.body
    assert f"Update your card: {SITE_URL}/" in failed.body
    assert invoice["hosted_invoice_url"] in failed.body
    assert f'href="{invoice["hosted_invoice_url"]}"' in _html_text(failed)
    [sms] = twilio.requests
    assert sms["data"]["To"] == str(buyer.phone)
    assert sms["data"]["Body"].startswith("SmartFlow: your payment of £49.00 failed.")

    actions.clock_advance(days=3)  # the first retry fails too: one more message
    sent = _send(client)
    assert [m.subject for m in sent] == ["Your SmartFlow payment failed"]
    # Stripe's next retry (day 8) comes after the plan is cut (day 7): not promised.
    assert _open_invoice(sub_id)["next_payment_attempt"] > grace_end
    assert f"Your plan's features stop on {_day(grace_end)} unless it is paid" in sent[0].body
    assert "try again" not in sent[0].body
    assert len(twilio.requests) == 2

    customer_id = stripe.Subscription.retrieve(sub_id).customer
    collection.customer_card_set(customer_id, CARD_OK)  # "Update card" in the portal
    actions.clock_advance(days=5)  # the next retry pays
    sent = _send(client)
    recovered = _only(sent, "Payment received: your SmartFlow plan is active")
    assert len(sent) == 1
    assert len(twilio.requests) == 2  # no SMS for good news
    assert "we received your payment of £49.00" in recovered.body
    assert "Your SmartFlow 'FlowKit' plan is active." in recovered.body
    assert recovered.reply_to == [settings.SUPPORT_EMAIL]

    # Some events came twice, yet each attempt was told once.
    events = list(Delivery.objects.values_list("event_id", flat=True))
    assert len(events) > len(set(events))
    assert OnboardingMessage.objects.filter(template="payment_failed", channel="email").count() == 2


def test_a_failure_reported_after_the_invoice_was_paid_tells_only_the_recovery(client, buyer):
    sub_id = _subscribe(client, buyer, CARD_RENEWAL_FAILS)
    _send(client)
    actions.clock_advance(days=31, hours=1)
    assert [m.subject for m in _send(client)] == ["Your SmartFlow payment failed"]

    # The retry fails, the card is updated and the next retry pays, all before any of
    # their webhooks arrive: the second failure is stale by the time it is processed.
    actions.clock_advance(days=3)
    collection.customer_card_set(stripe.Subscription.retrieve(sub_id).customer, CARD_OK)
    actions.clock_advance(days=5)
    sent = _send(client)

    assert [m.subject for m in sent] == ["Payment received: your SmartFlow plan is active"]
    assert not OnboardingMessage.objects.filter(
        template="payment_failed", context__attempt_count=2
    ).exists()


def test_stripe_giving_up_ends_the_plan_with_one_message(client, customer, settings):
    # A grace longer than Stripe's retries (3 + 5 + 7 days), so that what ends the plan is
    # Stripe giving up, not the grace (billing/dunning.py).
    settings.BILLING_PAST_DUE_GRACE_DAYS = 30
    sub_id = _subscribe(client, customer, CARD_RENEWAL_FAILS)
    _send(client)

    # The renewal and the first two retries fail, each told as its webhooks arrive.
    for days, hours in ((31, 1), (3, 0), (5, 0)):  # charged an hour after the invoice
        actions.clock_advance(days=days, hours=hours)
        assert [m.subject for m in _send(client)] == ["Your SmartFlow payment failed"]
    actions.clock_advance(days=7)  # the last retry fails and Stripe cancels
    sent = _send(client)

    customer.refresh_from_db()
    assert customer.plan == "starter"
    ended = _only(sent, "Your SmartFlow plan has ended")
    ended_on = _day(stripe.Subscription.retrieve(sub_id).ended_at)
    assert (
        f"Your SmartFlow 'FlowKit' plan ended on {ended_on} because the renewal payment of "
        "£49.00 was not paid." in ended.body
    )
    assert "Nothing more will be taken for the old plan." in ended.body
    assert "Your account is now on the free 'Starter' plan." in ended.body
    assert f"{SITE_URL}/pricing/" in ended.body
    # Its last failure arrives with the subscription already cancelled: "ended" says it.
    assert len(sent) == 1
    # The customer gave no mobile number: no SMS was even attempted.
    assert not OnboardingMessage.objects.filter(channel="sms", status="sent").exists()


def test_a_renewal_needing_3d_secure_asks_for_confirmation_then_confirms(client, buyer, twilio):
    sub_id = _subscribe(client, buyer, CARD_3DS)
    _send(client)
    twilio.requests.clear()

    actions.clock_advance(days=31, hours=1)
    sent = _send(client)
    invoice = _open_invoice(sub_id)
    confirm = _only(sent, "Please confirm your SmartFlow payment")
    assert len(sent) == 1
    assert "confirm your payment of £49.00" in confirm.body
    assert f"Confirm the payment: {invoice['hosted_invoice_url']}" in confirm.body
    assert f'href="{invoice["hosted_invoice_url"]}"' in _html_text(confirm)
    [sms] = twilio.requests
    assert invoice["hosted_invoice_url"] in sms["data"]["Body"]

    collection.invoice_pay(invoice["id"], authenticated=True)  # on the hosted page
    sent = _send(client)
    assert [m.subject for m in sent] == ["Payment received: your SmartFlow plan is active"]


@pytest.mark.parametrize("delivery", ["stripe", "ordered"])
def test_a_3d_secure_renewal_asks_to_confirm_once_per_attempt_and_never_says_failed(
    client, buyer, twilio, settings, delivery
):
    # Stripe sends invoice.payment_failed and invoice.payment_action_required for the
    # same attempt; shuffled (stripe) or the failure first (ordered), one message each.
    settings.STRIPE_SANDBOX_DELIVERY = delivery
    sub_id = _subscribe(client, buyer, CARD_3DS)
    _send(client)
    twilio.requests.clear()

    actions.clock_advance(days=31, hours=1)  # the renewal, charged an hour after its invoice
    sent = _send(client)
    assert [m.subject for m in sent] == ["Please confirm your SmartFlow payment"]
    assert _open_invoice(sub_id)["attempt_count"] == 1
    assert len(twilio.requests) == 1
    assert twilio.requests[-1]["data"]["Body"].startswith(
        "SmartFlow: please confirm your payment of £49.00"
    )
    # Stripe does not retry a payment waiting for 3-D Secure: nothing more is attempted
    # or told while it waits for the customer (within the grace: the plan is kept).
    actions.clock_advance(days=5)
    assert _send(client) == []
    assert _open_invoice(sub_id)["attempt_count"] == 1

    # (Processing invoice.finalized before the PaymentIntent waiting for 3-D Secure is
    # synced can queue a "plan ended" that is skipped once it is: never sent.)
    told = OnboardingMessage.objects.exclude(template="welcome").exclude(
        status=OnboardingMessage.Status.SKIPPED
    )
    assert sorted(told.values_list("template", "channel")) == [
        ("payment_action_required", "email"),
        ("payment_action_required", "sms"),
    ]


def test_cancel_resume_cancel_tells_twice_and_the_end_once(client, customer):
    sub_id = _subscribe(client, customer, CARD_OK)
    _send(client)

    actions.subscription_cancel_at_period_end(sub_id)
    actions.subscription_cancel_at_period_end(sub_id, cancel=False)
    actions.subscription_cancel_at_period_end(sub_id)
    sent = _send(client)
    ends_at = stripe.Subscription.retrieve(sub_id).cancel_at
    subject = f"Your SmartFlow plan will end on {_day(ends_at)}"
    assert re.fullmatch(r"Your SmartFlow plan will end on \d{1,2} [A-Z][a-z]+ \d{4}", subject)
    # Two cancellations, however the three events were ordered or duplicated.
    assert [m.subject for m in sent] == [subject, subject]
    assert "you will not be charged for it again" in sent[0].body

    actions.clock_advance(days=31, hours=1)
    sent = _send(client)
    ended = _only(sent, "Your SmartFlow plan has ended")
    assert len(sent) == 1
    assert "plan has ended, as the subscription was cancelled." in ended.body


def test_a_cancellation_undone_before_its_webhook_tells_only_the_resume(client, customer):
    sub_id = _subscribe(client, customer, CARD_OK)
    _send(client)

    actions.subscription_cancel_at_period_end(sub_id)
    actions.subscription_cancel_at_period_end(sub_id, cancel=False)

    # Never "will end" (no longer true), whatever the order: the resume, with Stripe's
    # renewal (issue 27, defect 12).
    [resumed] = _send(client)
    assert resumed.subject == "Your SmartFlow cancellation is undone"
    charge = NextCharge.objects.get(subscription_id=sub_id)  # Stripe's preview, kept
    renews = _day(int(charge.due_at.timestamp()))
    assert f"It renews on {renews} for £49.00." in resumed.body


def test_each_refund_is_told_once_with_its_amount(client, customer):
    client.force_login(customer)
    response = client.post("/billing/checkout/", {"plan": "flowkit", "interval": "oneoff"})
    session_id = response["Location"].rstrip("/").split("/")[-1]
    actions.checkout_pay(session_id=session_id, card_number=CARD_OK)
    _send(client)
    payment_intent = stripe.checkout.Session.retrieve(session_id).payment_intent

    actions.refund_create(payment_intent_id=payment_intent, amount=9000)
    [partial] = _send(client)
    actions.refund_create(payment_intent_id=payment_intent)
    [full] = _send(client)

    assert partial.subject == full.subject == "Your SmartFlow refund"
    assert "We have refunded £90.00" in partial.body
    assert "part of your payment of £1,470.00" in partial.body
    assert "Your SmartFlow plan is now 'FlowKit'." in partial.body
    assert "We have refunded £1,380.00" in full.body
    assert "the rest of your payment of £1,470.00" in full.body
    assert "Your SmartFlow plan is now 'Starter'." in full.body
    assert full.reply_to == [settings.SUPPORT_EMAIL]


def test_a_failure_paid_before_the_worker_sends_it_is_not_sent(client, customer):
    sub_id = _subscribe(client, customer, CARD_RENEWAL_FAILS)
    _send(client)
    actions.clock_advance(days=31, hours=1)
    _deliver(client)  # "payment failed" is queued, but the worker is behind

    collection.customer_card_set(stripe.Subscription.retrieve(sub_id).customer, CARD_OK)
    collection.invoice_pay(_open_invoice(sub_id)["id"])  # the customer pays at once
    sent = _send(client)

    assert [m.subject for m in sent] == ["Payment received: your SmartFlow plan is active"]
    failed = OnboardingMessage.objects.get(template="payment_failed", channel="email")
    assert failed.status == "skipped"
    assert failed.last_error == "the invoice is paid now"


def test_an_upgrade_tells_stripes_charge_once_and_is_not_a_second_welcome(client, buyer, twilio):
    sub_id = _subscribe(client, buyer, CARD_OK)
    assert [m.subject for m in _send(client)] == ["Your SmartFlow plan is live"]
    twilio.requests.clear()

    page = client.get("/billing/switch/?plan=launchpack").content.decode()
    quote = re.search(r'name="quote" value="([^"]+)"', page).group(1)
    client.post("/billing/switch/", {"plan": "launchpack", "quote": quote})
    sent = _send(client)

    # However the upgrade's events came (shuffled, some twice): one message, the upgrade.
    [upgraded] = sent
    assert upgraded.subject == "You're now on SmartFlow LaunchPack"
    invoice = next(
        i
        for i in store.all_of("invoice")
        if collection._subscription_id(i) == sub_id and i["billing_reason"] == "subscription_update"
    )
    charged = f"£{invoice['amount_paid'] / 100:,.2f}"
    assert invoice["amount_paid"] > 0
    assert f"{charged} was charged for it on" in upgraded.body
    [sms] = twilio.requests
    assert sms["data"]["Body"].startswith(f"SmartFlow: you're now on 'LaunchPack', {charged}")


def test_a_oneoff_above_the_subscription_is_one_message_saying_when_it_stops(client, customer):
    # It sent "You're now on LaunchPack" and "Your plan will end on …" for one purchase.
    sub_id = _subscribe(client, customer, CARD_OK)
    _send(client)
    response = client.post("/billing/checkout/", {"plan": "launchpack", "interval": "oneoff"})
    session_id = response["Location"].rstrip("/").split("/")[-1]
    actions.checkout_pay(session_id=session_id, card_number=CARD_OK)

    sent = _send(client) + _send(client)  # the cancellation's own events come after

    assert [m.subject for m in sent] == ["You're now on SmartFlow LaunchPack"]
    sub = stripe.Subscription.retrieve(sub_id)
    assert sub.cancel_at_period_end
    ends = _day(sub["items"]["data"][0]["current_period_end"])
    assert "You paid £2,970.00 once" in sent[0].body
    assert f"subscription stops at the end of the period you have paid for, on {ends}" in (
        sent[0].body
    )
