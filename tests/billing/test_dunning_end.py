"""The end of dunning as a customer lives it, on the sandbox with the app's workers
keeping up: the plan drops at the grace's end on Stripe's clock (issue 27, defect 20), one
message says so (defect 3), the unpaid invoice cannot be paid any more and a payment for
it anyway is refunded (defect 19)."""

from __future__ import annotations

import re
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from djstripe.models import Subscription

from devtools.stripe_sandbox import collection, store
from devtools.stripe_sandbox.delivery import deliver_pending
from tests.sandbox_app import app_transport

pytestmark = pytest.mark.django_db

DAY = 86400
CARD_RENEWAL_FAILS = "4000 0000 0000 0341"
CARD_3DS = "4000 0027 6000 3184"


def _path(url: str) -> str:
    return url.removeprefix("http://testserver")


def _deliver(client: Any) -> None:
    assert deliver_pending(transport=app_transport(client)).failed == 0


def _text(response: Any) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


@pytest.fixture
def shopper(client, customer, settings) -> Any:
    settings.SITE_URL = "http://testserver"
    call_command("stripe_catalog", stdout=StringIO())
    client.force_login(customer)
    return client


def _subscribe(client: Any, card: str) -> dict[str, Any]:
    started = client.post("/billing/checkout/", {"plan": "flowkit", "interval": "monthly"})
    form = {"card_number": card}
    if card == CARD_3DS:
        form["authenticate"] = "approve"  # the first payment, on-session
    client.post(_path(started["Location"]), form)
    _deliver(client)
    return Subscription.objects.get(customer__subscriber__isnull=False).stripe_data


# Stripe (and the sandbox) leave a renewal invoice a draft for an hour after the period
# ends, then attempt it: the grace counts from that attempt.
DRAFT_HOUR = 3600


def _renewal(sub: dict[str, Any]) -> int:
    """When the renewal is first attempted: the period's end and the draft hour."""
    return int(sub["items"]["data"][0]["current_period_end"]) + DRAFT_HOUR


def _advance_to(client: Any, when: int) -> None:
    collection.clock_advance(when - store.now())
    _deliver(client)


@pytest.mark.parametrize("card", [CARD_RENEWAL_FAILS, CARD_3DS], ids=["declined", "3ds"])
def test_the_plan_drops_when_the_clock_passes_the_grace_end(shopper, customer, card):
    renewal = _renewal(_subscribe(shopper, card))
    _advance_to(shopper, renewal + 60)
    _advance_to(shopper, renewal + 7 * DAY - 600)
    customer.refresh_from_db()
    kept = customer.plan

    # Day 7 and a bit: no retry or other event of the customer's falls in between.
    _advance_to(shopper, renewal + 7 * DAY + 600)
    customer.refresh_from_db()

    assert kept == "flowkit"
    assert customer.plan == "starter"


def _messages(customer: Any) -> list[Any]:
    from onboarding.models import OnboardingMessage

    return list(OnboardingMessage.objects.filter(user=customer, channel="email").order_by("pk"))


def test_the_end_of_dunning_sends_one_message_and_closes_the_invoice(shopper, customer):
    from djstripe.models import Invoice

    from onboarding.notices import notice_email_render

    renewal = _renewal(_subscribe(shopper, CARD_RENEWAL_FAILS))
    _advance_to(shopper, renewal + 60)
    sub_id = Subscription.objects.get(customer__subscriber=customer).id
    invoice_id = Subscription.objects.get(id=sub_id).stripe_data["latest_invoice"]
    # Retries on days 3, 8 and 15 (STRIPE_SANDBOX_RETRY_DAYS 3,5,7); the grace is 7 days.
    _advance_to(shopper, renewal + 3 * DAY + 600)
    second = _text(shopper.get("/"))
    _advance_to(shopper, renewal + 16 * DAY)

    sent = [(m.template, (m.context or {}).get("attempt_count")) for m in _messages(customer)]
    failed = [m for m in _messages(customer) if m.template == "payment_failed"]
    ended = [m for m in _messages(customer) if m.template == "plan_ended"]
    stored = Invoice.objects.get(id=invoice_id).stripe_data
    billing = _text(shopper.get("/billing/"))
    home = _text(shopper.get("/"))

    # While in dunning: the day features stop, and no retry promised after it (day 8).
    assert "Your plan's features stop on" in second
    assert "try again" not in second
    assert [a for t, a in sent if t == "payment_failed"] == [1, 2], sent
    assert failed[-1].context["next_payment_attempt"] is None
    assert failed[-1].context["plan_ends_at"] == renewal + 7 * DAY
    # The end: one message, saying when and why, never "payment failed" for the last try.
    assert len(ended) == 1, sent
    text = notice_email_render(ended[0]).text
    assert "because the renewal payment of £49.00 was not paid" in text
    assert "ended on" in text
    assert "/pricing/" in text
    # The invoice is void at Stripe and here, and offered nowhere.
    assert stored["status"] == "void"
    row = re.search(rf'<li class="invoice" data-invoice="{invoice_id}".*?</li>', billing).group(0)
    assert 'data-status="void"' in row
    assert "Void, not owed" in row
    assert ">Due<" not in billing
    assert f'href="{stored["hosted_invoice_url"]}"' not in billing  # its PDF stays
    assert "£49.00" not in home
    assert 'class="dunning-banner"' not in home


def test_a_payment_for_an_ended_subscription_is_refunded_and_told(shopper, customer, settings):
    from djstripe.models import Invoice

    from billing.models import BillingAlert

    settings.BILLING_UNPAID_INVOICES = "uncollectible"
    renewal = _renewal(_subscribe(shopper, CARD_3DS))
    _advance_to(shopper, renewal + 60)
    sub_id = Subscription.objects.get(customer__subscriber=customer).id
    invoice_id = Subscription.objects.get(id=sub_id).stripe_data["latest_invoice"]
    _advance_to(shopper, renewal + 16 * DAY)  # never confirmed: Stripe gives up
    closed = Invoice.objects.get(id=invoice_id).stripe_data["status"]

    # The customer confirms an old link anyway: Stripe takes an uncollectible invoice's payment.
    assert collection.invoice_pay(invoice_id, authenticated=True) == collection.PAID
    _deliver(shopper)

    customer.refresh_from_db()
    refunds = [r for r in store.all_of("refund") if r["metadata"].get("invoice") == invoice_id]
    told = [m for m in _messages(customer) if m.template == "paid_after_end_refunded"]
    assert closed == "uncollectible"
    assert customer.plan == "starter"
    assert len(refunds) == 1
    assert refunds[0]["amount"] == 4900
    assert BillingAlert.objects.filter(kind="paid_after_end", stripe_id=invoice_id).exists()
    assert len(told) == 1
    assert told[0].context["amount_refunded"] == 4900
    # One message for the refund: not also the plain "your refund".
    assert not [m for m in _messages(customer) if m.template == "refund"]
