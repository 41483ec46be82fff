"""Upgrading a subscription: quoted from Stripe's preview, charged now, applied once paid."""

from __future__ import annotations

import re

import pytest
import stripe
from django.core import signing

from billing.models import PlanChange
from billing.stripe_api import api_kwargs
from tests.billing import stripe_fakes as sf

pytestmark = pytest.mark.django_db

# Subscriptions start half-way through their month.
HALF_A_MONTH_AGO = sf.NOW - 15 * 86400
CARD_FAILS_LATER = "4000000000000341"
CARD_3DS_ALWAYS = "4000002760003184"


@pytest.fixture
def signed_in(client, customer):
    client.force_login(customer)
    return client


def _switch_previews(fake_stripe) -> list[dict]:
    """The previews a switch page asked for (the worker's preview of the next charge,
    billing/standing.py, names no item change)."""
    calls = fake_stripe.calls_to("POST", "/v1/invoices/create_preview")
    return [c for c in calls if "subscription_details[items][0][id]" in c]


def _quote(page: str) -> str:
    return re.search(r'name="quote" value="([^"]+)"', page).group(1)


def test_the_confirmation_page_shows_stripes_amount_due_now(
    signed_in, fake_stripe, catalog, payer, subscribe
):
    sub = subscribe("flowkit", period_start=HALF_A_MONTH_AGO)

    page = signed_in.get("/billing/switch/?plan=launchpack").content.decode()

    [now, renewal] = _switch_previews(fake_stripe)
    for params in (now, renewal):
        assert params["customer"] == payer["id"]
        assert params["subscription"] == sub["id"]
        assert params["subscription_details[items][0][id]"] == sub["items"]["data"][0]["id"]
        price = params["subscription_details[items][0][price]"]
        assert price == catalog["launchpack_monthly"]["id"]
    assert now["subscription_details[proration_behavior]"] == "always_invoice"
    # Stripe's clock says when "now" is: no proration date of ours is sent.
    assert "subscription_details[proration_date]" not in now
    assert renewal["subscription_details[proration_behavior]"] == "none"
    when = signing.loads(_quote(page), salt="billing.switch.quote")[3]
    # Half a month of LaunchPack (9900) less half a month of FlowKit (4900): about £25.
    preview = stripe.Invoice.create_preview(
        customer=payer["id"],
        subscription=sub["id"],
        subscription_details={
            "items": [
                {"id": sub["items"]["data"][0]["id"], "price": catalog["launchpack_monthly"]["id"]}
            ],
            "proration_behavior": "always_invoice",
            "proration_date": when,
        },
        **api_kwargs(),
    )
    assert 2400 < preview["amount_due"] < 2600
    amount = f"£{preview['amount_due'] / 100:.2f}"
    assert f'Due now: <strong data-amount-due="{preview["amount_due"]}">{amount}</strong>' in page
    assert f"Pay {amount} and upgrade" in page
    # Stripe's lines: the credit for unused FlowKit, then LaunchPack; and each renewal after.
    assert "Unused time on" in page
    assert "Remaining time on" in page
    assert "Then <strong>£99.00 a month</strong> from your next renewal" in page


def test_an_upgrade_is_charged_now_at_the_quoted_amount_and_then_applied(
    signed_in, fake_stripe, catalog, customer, subscribe
):
    sub = subscribe("flowkit", period_start=HALF_A_MONTH_AGO)
    page = signed_in.get("/billing/switch/?plan=launchpack").content.decode()
    quoted = int(re.search(r'data-amount-due="(\d+)"', page).group(1))
    when = signing.loads(_quote(page), salt="billing.switch.quote")[3]

    response = signed_in.post("/billing/switch/", {"plan": "launchpack", "quote": _quote(page)})

    assert response.status_code == 302
    assert response["Location"] == "/"
    [params] = fake_stripe.calls_to("POST", f"/v1/subscriptions/{sub['id']}")
    assert params == {
        "items[0][id]": sub["items"]["data"][0]["id"],
        "items[0][price]": catalog["launchpack_monthly"]["id"],
        "proration_behavior": "always_invoice",
        "payment_behavior": "pending_if_incomplete",
        "proration_date": str(when),  # the moment the customer was quoted
    }
    [invoice] = stripe.Invoice.list(subscription=sub["id"], **api_kwargs()).data
    assert invoice["billing_reason"] == "subscription_update"
    assert (invoice["status"], invoice["amount_paid"]) == ("paid", quoted)
    customer.refresh_from_db()
    assert customer.plan == "launchpack"
    assert PlanChange.objects.get(new_plan="launchpack").old_plan == "flowkit"


def test_a_declined_upgrade_keeps_the_old_plan_and_says_update_the_card(
    signed_in, fake_stripe, catalog, customer, subscribe
):
    sub = subscribe("flowkit", period_start=HALF_A_MONTH_AGO, card=CARD_FAILS_LATER)
    page = signed_in.get("/billing/switch/?plan=launchpack").content.decode()

    response = signed_in.post("/billing/switch/", {"plan": "launchpack", "quote": _quote(page)})

    assert response["Location"] == "/billing/switch/pending/"
    customer.refresh_from_db()
    assert customer.plan == "flowkit"
    stored = fake_stripe.objects[sub["id"]]
    assert stored["items"]["data"][0]["price"]["id"] == catalog["flowkit_monthly"]["id"]
    assert stored["pending_update"] is not None
    waiting = signed_in.get("/billing/switch/pending/").content.decode()
    assert "You are still on <strong>FlowKit</strong>" in waiting
    assert "Your card was declined" in waiting
    assert 'action="/billing/portal/"' in waiting
    assert "Update your card" in waiting


def test_an_upgrade_needing_authentication_links_the_hosted_invoice(
    signed_in, fake_stripe, customer, subscribe
):
    sub = subscribe("flowkit", period_start=HALF_A_MONTH_AGO, card=CARD_3DS_ALWAYS)
    page = signed_in.get("/billing/switch/?plan=launchpack").content.decode()
    signed_in.post("/billing/switch/", {"plan": "launchpack", "quote": _quote(page)})

    waiting = signed_in.get("/billing/switch/pending/").content.decode()

    invoice = fake_stripe.objects[fake_stripe.objects[sub["id"]]["latest_invoice"]]
    assert invoice["status"] == "open"
    assert "Your bank wants you to confirm this payment" in waiting
    assert f'href="{invoice["hosted_invoice_url"]}">Confirm the payment' in waiting
    customer.refresh_from_db()
    assert customer.plan == "flowkit"


@pytest.mark.parametrize(
    "quote",
    [
        "",
        "forged",
        # A quote for another plan or subscription, or one signed without our secret.
        signing.dumps(["sub_other", "launchpack", sf.NOW], salt="billing.switch.quote"),
        signing.dumps(["x", "launchpack", sf.NOW], salt="another.salt"),
    ],
    # Fixed ids: a signed value holds the time it was signed, so pytest-xdist's workers
    # would each collect a differently named test and refuse to run.
    ids=["missing", "forged", "another-subscription", "another-salt"],
)
def test_a_switch_without_a_valid_quote_is_400_and_charges_nothing(
    signed_in, fake_stripe, customer, quote, subscribe
):
    sub = subscribe("flowkit", period_start=HALF_A_MONTH_AGO)

    response = signed_in.post("/billing/switch/", {"plan": "launchpack", "quote": quote})

    assert response.status_code == 400
    assert "Nothing was charged" in response.content.decode()
    assert fake_stripe.calls_to("POST", f"/v1/subscriptions/{sub['id']}") == []
    customer.refresh_from_db()
    assert customer.plan == "flowkit"


def test_a_quote_for_another_plan_cannot_be_reused(signed_in, settings, subscribe):
    sub = subscribe("flowkit", period_start=HALF_A_MONTH_AGO)
    token = signing.dumps([sub["id"], "flowkit", sf.NOW], salt="billing.switch.quote")

    response = signed_in.post("/billing/switch/", {"plan": "launchpack", "quote": token})

    assert response.status_code == 400


def test_an_expired_quote_is_refused(signed_in, fake_stripe, monkeypatch, subscribe):
    sub = subscribe("flowkit", period_start=HALF_A_MONTH_AGO)
    page = signed_in.get("/billing/switch/?plan=launchpack").content.decode()
    monkeypatch.setattr("billing.checkout.QUOTE_SECONDS", -1)

    response = signed_in.post("/billing/switch/", {"plan": "launchpack", "quote": _quote(page)})

    assert response.status_code == 400
    assert fake_stripe.calls_to("POST", f"/v1/subscriptions/{sub['id']}") == []


def test_the_pending_page_without_a_pending_upgrade_goes_to_the_dashboard(signed_in, subscribe):
    subscribe("flowkit", period_start=HALF_A_MONTH_AGO)

    response = signed_in.get("/billing/switch/pending/")

    assert response.status_code == 302
    assert response["Location"] == "/"


def test_an_add_on_listed_before_the_plan_is_left_alone_by_an_upgrade(
    signed_in, deliver, fake_stripe, catalog, payer
):
    """Stripe lists items in the order they were added: the plan's item need not be the
    first. The page names the plan the subscription sells, and the upgrade replaces the
    plan's item, not the add-on."""
    addon_product = sf.product(name="SMS bundle")
    addon = sf.price(prod=addon_product, lookup_key="sms_bundle_monthly", amount=500)
    fake_stripe.add(addon_product)
    fake_stripe.add(addon)
    sub = sf.subscription(cus=payer, prc=addon, period_start=HALF_A_MONTH_AGO)
    plan_item = {
        **sub["items"]["data"][0],
        "id": sf.new_id("si"),
        "price": catalog["flowkit_monthly"],
    }
    sub["items"]["data"].append(plan_item)
    fake_stripe.add(sub)
    deliver(sf.event("customer.subscription.created", sub))

    page = signed_in.get("/billing/switch/?plan=launchpack").content.decode()

    assert (
        "moves from <strong>FlowKit monthly</strong> to <strong>LaunchPack monthly</strong>" in page
    )
    params = _switch_previews(fake_stripe)[0]
    assert params["subscription_details[items][0][id]"] == plan_item["id"]
    assert params["subscription_details[items][0][price]"] == catalog["launchpack_monthly"]["id"]
    assert "subscription_details[items][1][id]" not in params


def test_a_subscription_selling_no_plan_we_know_cannot_be_switched(
    signed_in, deliver, fake_stripe, payer
):
    addon_product = sf.product(name="SMS bundle")
    addon = sf.price(prod=addon_product, lookup_key="sms_bundle_monthly", amount=500)
    fake_stripe.add(addon_product)
    fake_stripe.add(addon)
    sub = sf.subscription(cus=payer, prc=addon)
    fake_stripe.add(sub)
    deliver(sf.event("customer.subscription.created", sub))

    response = signed_in.get("/billing/switch/?plan=launchpack")

    assert response.status_code == 400
    assert not _switch_previews(fake_stripe)


def test_the_quote_follows_stripes_clock_not_ours(signed_in, customer, subscribe):
    # The sandbox's clock (a Stripe test clock likewise) is ten days on from ours: the
    # upgrade is prorated to Stripe's now, quoted and charged alike. The wall clock used
    # to quote the start of the period: five days more of LaunchPack than were left.
    from devtools.stripe_sandbox import collection

    sub = subscribe("flowkit", period_start=HALF_A_MONTH_AGO)
    start, end = (
        sub["items"]["data"][0]["current_period_start"],
        sub["items"]["data"][0]["current_period_end"],
    )
    collection.clock_advance(10 * 86400)
    from devtools.stripe_sandbox import store

    left = end - store.now()

    page = signed_in.get("/billing/switch/?plan=launchpack").content.decode()
    quoted = int(re.search(r'data-amount-due="(\d+)"', page).group(1))
    signed_in.post("/billing/switch/", {"plan": "launchpack", "quote": _quote(page)})

    expected = round((9900 - 4900) * left / (end - start))
    assert abs(quoted - expected) <= 2
    [invoice] = stripe.Invoice.list(subscription=sub["id"], **api_kwargs()).data
    assert invoice["amount_paid"] == quoted
