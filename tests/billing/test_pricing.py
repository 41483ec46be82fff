from __future__ import annotations

import re

import pytest
from djstripe.models import Price

pytestmark = pytest.mark.django_db


@pytest.fixture
def synced(catalog):
    for prc in catalog.values():
        Price.sync_from_stripe_data(prc)


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def _card(body: str, plan: str) -> str:
    start = body.index(f'id="plan-{plan}"')
    end = body.find('<section class="card plan-card', start)
    return _text(body[start : end if end != -1 else len(body)])


def test_pricing_shows_monthly_and_oneoff_amounts(client, synced):
    body = client.get("/pricing/").content.decode()

    assert "£49.00" in body
    assert "£1,470.00" in body
    assert "£99.00" in body
    assert "£2,970.00" in body
    assert "Sign up to subscribe" in body  # anonymous visitors sign up first
    assert "/signup/?next=/pricing/" in body


def test_pricing_shows_monthly_yearly_and_once_side_by_side_with_what_each_means(client, synced):
    # One page, no `?interval=` toggle: every plan shows its three ways to pay, each
    # saying what it buys, and paying once costs well above a year.
    body = client.get("/pricing/").content.decode()
    flowkit, launchpack = _card(body, "flowkit"), _card(body, "launchpack")

    for card, month, year, once in (
        (flowkit, "£49.00", "£490.00", "£1,470.00"),
        (launchpack, "£99.00", "£990.00", "£2,970.00"),
    ):
        assert f"Monthly {month} per month Billed every month. Cancel at any time." in card
        assert f"Yearly {year} per year 2 months free. Renews yearly." in card
        assert f"Pay once {once} once Yours for good: nothing renews." in card
        assert card.index(month) < card.index(year) < card.index(once)
    assert "interval=annual" not in body


def test_pricing_marks_the_current_plan_and_offers_checkout(client, synced, customer):
    customer.plan = "flowkit"
    customer.save()
    client.force_login(customer)

    body = client.get("/pricing/").content.decode()

    assert body.count("Your plan") == 1
    assert 'action="/billing/checkout/"' in body


def test_pricing_without_synced_prices_says_unavailable(client):
    body = client.get("/pricing/").content.decode()

    assert "not available right now" in body


def test_pricing_answers_head_like_get(client, synced):
    response = client.head("/pricing/")

    assert response.status_code == 200
    assert response.content == b""


PRICES = ("£49.00", "£490.00", "£1,470.00", "£99.00", "£990.00", "£2,970.00")


@pytest.mark.parametrize(
    ("behavior", "words"), [("exclusive", "+ VAT"), ("inclusive", "incl. VAT")]
)
def test_with_tax_on_every_price_says_how_vat_applies(client, synced, settings, behavior, words):
    settings.BILLING_AUTOMATIC_TAX = True
    settings.BILLING_TAX_BEHAVIOR = behavior

    for url in ("/pricing/", "/"):  # the pricing page and the landing page
        text = _text(client.get(url).content.decode())
        for amount in PRICES:
            assert f"{amount} {words}" in text, (url, amount)


def test_with_tax_off_prices_say_nothing_of_vat(client, synced):
    assert "VAT" not in _text(client.get("/pricing/").content.decode())


@pytest.mark.parametrize(
    ("automatic", "setting", "price_behavior", "words"),
    [
        (False, "exclusive", "exclusive", ""),
        (True, "exclusive", None, "+ VAT"),
        (True, "inclusive", None, "incl. VAT"),
        (True, "inclusive", "unspecified", "incl. VAT"),
        # The Price's own behaviour is Stripe's, whatever new prices would get.
        (True, "exclusive", "inclusive", "incl. VAT"),
        (True, "inclusive", "exclusive", "+ VAT"),
    ],
)
def test_vat_words_follow_the_price_then_the_setting(
    settings, automatic, setting, price_behavior, words
):
    from billing.pricing import vat_words

    settings.BILLING_AUTOMATIC_TAX = automatic
    settings.BILLING_TAX_BEHAVIOR = setting

    assert vat_words(tax_behavior=price_behavior) == words


def _card_text(body: str) -> str:
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body))
    return text.replace(" ,", ",").replace(" /", "/")


def test_a_first_subscription_is_priced_with_its_trial_and_nothing_due_today(
    client, synced, customer, settings
):
    settings.BILLING_TRIAL_DAYS = 14
    client.force_login(customer)

    text = _card_text(client.get("/pricing/").content.decode())

    assert "14 days free, then £49.00/month" in text
    assert "£0.00 due today" in text
    # A one-off has no trial: its price as it is.
    assert "£1,470.00 once" in text


def test_the_trial_price_says_how_vat_applies_while_tax_is_on(client, synced, customer, settings):
    settings.BILLING_TRIAL_DAYS = 14
    settings.BILLING_AUTOMATIC_TAX = True
    settings.BILLING_TAX_BEHAVIOR = "exclusive"
    client.force_login(customer)

    text = _card_text(client.get("/pricing/").content.decode())

    assert "then £49.00 + VAT/month" in text


def test_no_trial_is_priced_for_a_customer_who_had_a_subscription(
    client, synced, customer, settings, deliver, fake_stripe, catalog, payer
):
    from tests.billing import stripe_fakes as sf

    settings.BILLING_TRIAL_DAYS = 14
    sub = sf.subscription(cus=payer, prc=catalog["flowkit_monthly"], status="canceled")
    fake_stripe.add(sub)
    deliver(sf.event("customer.subscription.deleted", sub))
    client.force_login(customer)

    text = _card_text(client.get("/pricing/").content.decode())

    assert "days free" not in text
    assert "£49.00 per month" in text
