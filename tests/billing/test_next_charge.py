"""The next payment a customer is shown is Stripe's own preview of the next invoice
(billing/next_charge.py), tax and discounts included, fetched by the worker when the
subscription syncs: never the items' prices added up, never a Stripe call in a page."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from djstripe.models import Subscription

from billing.models import NextCharge
from devtools.stripe_sandbox import actions, store
from devtools.stripe_sandbox.delivery import deliver_pending
from onboarding.welcome import welcome_email_render
from tests.sandbox_app import app_transport

pytestmark = pytest.mark.django_db

CARD = "4242 4242 4242 4242"


def _path(url: str) -> str:
    return url.removeprefix("http://testserver")


def _deliver(client: Any) -> None:
    assert deliver_pending(transport=app_transport(client)).failed == 0


def _long(ts: int) -> str:
    moment = datetime.fromtimestamp(ts, tz=UTC)
    return f"{moment.day} {moment:%B %Y}"


def _text(response: Any) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


@pytest.fixture
def shopper(client, customer, settings) -> Any:
    settings.SITE_URL = "http://testserver"
    call_command("stripe_catalog", stdout=StringIO())
    client.force_login(customer)
    return client


def _subscribe(client: Any, plan: str, *, code: str = "", country: str = "") -> None:
    started = client.post("/billing/checkout/", {"plan": plan, "interval": "monthly"})
    form = {"card_number": CARD, "promotion_code": code}
    if country:
        form["country"] = country
    client.post(_path(started["Location"]), form)
    _deliver(client)


def test_next_payment_includes_vat_and_drops_a_once_only_code(shopper, customer, settings):
    # LaunchPack £99 + 20 % VAT with a 20 %-off-once code: Stripe charged £95.04 now and
    # will charge £118.80 next. The dashboard said "next payment £99.00".
    settings.BILLING_AUTOMATIC_TAX = True
    call_command(
        "stripe_sandbox", "coupon", "--code", "SPRING20", "--percent-off", "20", stdout=StringIO()
    )

    _subscribe(shopper, "launchpack", code="SPRING20", country="GB")

    billing = _text(shopper.get("/billing/"))
    dashboard = _text(shopper.get("/"))
    assert "£95.04" in billing  # the first invoice, as charged
    # The amount has the VAT in it, and says so while tax is on (defect 1).
    assert "next payment £118.80/month incl. £19.80 VAT" in billing
    assert "next payment £118.80/month incl. £19.80 VAT" in dashboard
    assert "£99.00/month" not in billing + dashboard


def test_a_forever_code_lowers_every_next_payment(shopper, customer):
    call_command(
        "stripe_sandbox",
        "coupon",
        "--code",
        "FRIENDS",
        "--percent-off",
        "10",
        "--duration",
        "forever",
        stdout=StringIO(),
    )

    _subscribe(shopper, "flowkit", code="FRIENDS")

    assert "next payment £44.10/month" in _text(shopper.get("/billing/"))


def test_the_next_charge_is_fetched_by_the_worker_and_a_page_makes_no_stripe_call(
    shopper, customer, fake_stripe
):
    _subscribe(shopper, "flowkit")
    charge = NextCharge.objects.get(user=customer)
    sub = Subscription.objects.get(customer__subscriber=customer).stripe_data
    fake_stripe.calls.clear()

    page = _text(shopper.get("/billing/"))

    assert fake_stripe.calls == []
    assert (charge.amount_due, charge.currency) == (4900, "gbp")
    assert int(charge.due_at.timestamp()) == sub["items"]["data"][0]["current_period_end"]
    assert "next payment £49.00/month" in page


def test_a_subscription_set_to_cancel_has_no_next_charge(shopper, customer):
    _subscribe(shopper, "flowkit")
    assert NextCharge.objects.filter(user=customer).exists()

    shopper.post("/billing/cancel/")
    _deliver(shopper)

    assert not NextCharge.objects.filter(user=customer).exists()
    assert "next payment" not in _text(shopper.get("/billing/"))


def test_the_next_charge_follows_the_renewal(shopper, customer):
    _subscribe(shopper, "flowkit")
    first = NextCharge.objects.get(user=customer)
    sub = Subscription.objects.get(customer__subscriber=customer)

    actions.subscription_renew(sub.id)
    _deliver(shopper)

    # The same row, written again (one upsert per refresh), with when it was asked.
    [renewed] = NextCharge.objects.filter(user=customer)
    assert renewed.pk == first.pk
    assert renewed.due_at > first.due_at
    assert renewed.fetched_at > first.fetched_at
    assert store.now() > 0


def test_a_trial_says_nothing_is_due_today_and_what_is_charged_when(shopper, customer, settings):
    # The success page said "Your promotion code covers it" for a trial bought with no
    # code; the cancel page of a trial said "you are not charged again".
    settings.BILLING_TRIAL_DAYS = 14
    started = shopper.post("/billing/checkout/", {"plan": "flowkit", "interval": "monthly"})
    paid = shopper.post(_path(started["Location"]), {"card_number": CARD})
    _deliver(shopper)
    sub = Subscription.objects.get(customer__subscriber=customer).stripe_data
    ends = _long(sub["trial_end"])

    success = _text(shopper.get(_path(paid["Location"])))
    cancel = _text(shopper.get("/billing/cancel/"))

    assert sub["status"] == "trialing"
    assert "promotion code" not in success
    assert "£0.00 due today" in success
    assert f"It ends on <strong>{ends}</strong>, then we charge <strong>£49.00</strong>" in success
    assert "not charged again" not in cancel
    assert f"Your free trial of <strong>FlowKit</strong> ends on <strong>{ends}</strong>" in cancel
    assert "nothing is ever charged" in cancel
    welcome = welcome_email_render(user=customer, plan="flowkit").text
    assert f"Your free trial runs until {ends}: nothing is charged before then" in welcome
    assert "Then £49.00 is charged to the card you gave us" in welcome


def test_a_failed_renewal_with_a_promotion_code_keeps_its_plan_in_grace(shopper, customer):
    # dj-stripe's invoice sync fails on an invoice whose discounts are bare ids: the
    # past_due subscription's retried invoice (billing.checkout.retried_invoice_sync) is
    # read expanded, or every event of a discounted customer in dunning failed.
    call_command(
        "stripe_sandbox",
        "coupon",
        "--code",
        "LOYAL",
        "--percent-off",
        "10",
        "--duration",
        "forever",
        stdout=StringIO(),
    )
    started = shopper.post("/billing/checkout/", {"plan": "flowkit", "interval": "monthly"})
    form = {"card_number": "4000 0000 0000 0341", "promotion_code": "LOYAL"}
    shopper.post(_path(started["Location"]), form)  # pays now, fails at renewal
    _deliver(shopper)
    sub = Subscription.objects.get(customer__subscriber=customer).stripe_data
    from devtools.stripe_sandbox import collection

    # The renewal is charged (and fails) an hour after its invoice is created.
    renewal = sub["items"]["data"][0]["current_period_end"] + collection.FINALIZE_SECONDS
    collection.clock_advance(renewal - store.now() + 60)
    _deliver(shopper)

    customer.refresh_from_db()
    assert Subscription.objects.get(id=sub["id"]).stripe_data["status"] == "past_due"
    assert customer.plan == "flowkit"  # kept while Stripe retries
    assert "Your payment of £44.10 failed." in _text(shopper.get("/"))
