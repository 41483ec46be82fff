"""Selling only what changes something: the pricing page and the server agree."""

from __future__ import annotations

import re

import pytest
from djstripe.models import Price

from billing.models import OneOffPurchase
from tests.billing import stripe_fakes as sf

pytestmark = pytest.mark.django_db


@pytest.fixture
def synced(catalog):
    # Starter Prices exist in this account (they map old subscriptions) but are not sold.
    for prc in catalog.values():
        Price.sync_from_stripe_data(prc)


@pytest.fixture
def signed_in(client, customer):
    client.force_login(customer)
    return client


def _buy_buttons(body: str) -> set[tuple[str, str]]:
    """The (plan, interval) pairs the page's checkout forms would post."""
    forms = re.findall(
        r'action="/billing/checkout/">.*?name="plan" value="(\w+)">.*?name="interval" '
        r'value="(\w+)">',
        body,
        re.S,
    )
    return set(forms)


def _oneoff(customer, plan: str) -> OneOffPurchase:
    purchase = OneOffPurchase.objects.create(
        user=customer,
        plan=plan,
        checkout_session_id=sf.new_id("cs_test"),
        amount=49000,
        currency="gbp",
    )
    customer.plan = plan
    customer.save()
    return purchase


def test_visitors_see_starter_as_free_with_no_starter_price(client, synced):
    body = client.get("/pricing/").content.decode()

    starter = body[body.index('id="plan-starter"') : body.index('id="plan-flowkit"')]
    assert "<strong>Free</strong>" in starter
    assert "£19.00" not in body
    assert "£190.00" not in body
    assert "Sign up free" in starter


def test_the_landing_page_says_free_for_starter(client, synced):
    body = client.get("/").content.decode()

    assert "<strong>Free</strong>" in body
    assert "£19.00" not in body


def test_a_starter_customer_is_never_offered_starter(signed_in, synced):
    body = signed_in.get("/pricing/").content.decode()

    assert _buy_buttons(body) == {
        ("flowkit", "monthly"),
        ("flowkit", "annual"),
        ("flowkit", "oneoff"),
        ("launchpack", "monthly"),
        ("launchpack", "annual"),
        ("launchpack", "oneoff"),
    }
    starter = body[body.index('id="plan-starter"') : body.index('id="plan-flowkit"')]
    assert "Your plan" in starter
    assert "<strong>Free</strong>" in starter


def test_a_oneoff_flowkit_owner_is_offered_only_launchpack(signed_in, synced, customer):
    _oneoff(customer, "flowkit")

    body = signed_in.get("/pricing/").content.decode()

    assert _buy_buttons(body) == {
        ("launchpack", "monthly"),
        ("launchpack", "annual"),
        ("launchpack", "oneoff"),
    }
    assert body.count("Your plan") == 1
    assert "You own FlowKit for good: there is nothing more to pay." in body


def test_a_subscriber_is_offered_a_switch_and_told_a_oneoff_ends_the_subscription(
    signed_in, synced, subscribe
):
    sub = subscribe("flowkit")

    body = signed_in.get("/pricing/").content.decode()

    assert _buy_buttons(body) == {("launchpack", "oneoff")}  # never a second subscription
    assert 'href="/billing/switch/?plan=launchpack"' in body
    assert "Switch to LaunchPack" in body
    # FlowKit monthly is what they have; FlowKit yearly is an upgrade of the same plan.
    assert 'href="/billing/switch/?plan=flowkit"' not in body
    assert 'href="/billing/switch/?plan=flowkit&amp;interval=annual"' in body
    end = sub["items"]["data"][0]["current_period_end"]
    from datetime import UTC, datetime

    day = datetime.fromtimestamp(end, tz=UTC)
    assert (
        "Your subscription will be cancelled at the end of its current period, "
        f"on {day.day} {day:%B %Y}, once this payment goes through"
    ) in body


def test_a_launchpack_subscriber_is_offered_nothing(signed_in, synced, subscribe):
    subscribe("launchpack")

    body = signed_in.get("/pricing/").content.decode()

    assert _buy_buttons(body) == set()
    # Only the same plan yearly, an upgrade of the subscription, is left to offer.
    assert re.findall(r">(Switch to [^<]+)</a>", body) == ["Switch to LaunchPack yearly"]


@pytest.mark.parametrize(
    ("plan", "interval"),
    [("starter", "monthly"), ("starter", "oneoff")],
)
def test_posting_a_starter_checkout_is_409(signed_in, fake_stripe, catalog, plan, interval):
    response = signed_in.post("/billing/checkout/", {"plan": plan, "interval": interval})

    assert response.status_code == 409
    assert "Starter is our free plan" in response.content.decode()
    assert fake_stripe.calls_to("POST", "/v1/checkout/sessions") == []


@pytest.mark.parametrize(
    ("plan", "interval"),
    [("flowkit", "monthly"), ("flowkit", "oneoff"), ("starter", "monthly")],
)
def test_a_oneoff_owner_posting_a_plan_they_have_gets_409(
    signed_in, fake_stripe, catalog, customer, plan, interval
):
    _oneoff(customer, "flowkit")

    response = signed_in.post("/billing/checkout/", {"plan": plan, "interval": interval})

    assert response.status_code == 409
    assert fake_stripe.calls_to("POST", "/v1/checkout/sessions") == []


def test_a_oneoff_owner_whose_plan_is_stored_lower_still_cannot_rebuy_it(
    signed_in, fake_stripe, catalog, customer
):
    # What they own counts, even before the stored plan catches up.
    _oneoff(customer, "launchpack")
    customer.plan = "starter"
    customer.save()

    response = signed_in.post("/billing/checkout/", {"plan": "flowkit", "interval": "oneoff"})

    assert response.status_code == 409
    assert "You already have LaunchPack" in response.content.decode()


def test_a_oneoff_owner_may_buy_a_higher_plan(signed_in, fake_stripe, catalog, customer):
    _oneoff(customer, "flowkit")

    response = signed_in.post("/billing/checkout/", {"plan": "launchpack", "interval": "oneoff"})

    assert response.status_code == 303
    [params] = fake_stripe.calls_to("POST", "/v1/checkout/sessions")
    assert params["line_items[0][price]"] == catalog["launchpack_oneoff"]["id"]


@pytest.mark.parametrize(
    ("plan", "interval"),
    [("flowkit", "monthly"), ("flowkit", "oneoff"), ("launchpack", "oneoff")],
)
def test_a_launchpack_subscriber_posting_anything_gets_409(
    signed_in, fake_stripe, plan, interval, subscribe
):
    subscribe("launchpack")
    fake_stripe.calls.clear()

    response = signed_in.post("/billing/checkout/", {"plan": plan, "interval": interval})

    assert response.status_code == 409
    assert [c for c in fake_stripe.calls if c[0] == "POST"] == []


@pytest.mark.parametrize("method", ["get", "post"])
def test_switching_down_or_sideways_is_409_and_changes_nothing(
    signed_in, fake_stripe, customer, method, subscribe
):
    sub = subscribe("launchpack")
    fake_stripe.calls.clear()

    for plan in ("flowkit", "launchpack", "starter"):
        response = getattr(signed_in, method)("/billing/switch/", {"plan": plan})
        assert response.status_code == 409, plan

    assert fake_stripe.calls_to("POST", f"/v1/subscriptions/{sub['id']}") == []
    assert fake_stripe.calls_to("POST", "/v1/invoices/create_preview") == []
    customer.refresh_from_db()
    assert customer.plan == "launchpack"


def test_a_staff_override_counts_as_what_the_user_has(signed_in, fake_stripe, catalog, customer):
    customer.plan = "launchpack"  # e.g. a comp; the stored plan is the current plan
    customer.save()

    response = signed_in.post("/billing/checkout/", {"plan": "flowkit", "interval": "monthly"})

    assert response.status_code == 409
    assert "which includes everything in FlowKit" in response.content.decode()


def test_a_oneoff_lost_to_a_dispute_is_not_owned_any_more(
    signed_in, fake_stripe, catalog, customer
):
    # The plan went back to Starter when the dispute was lost; the customer may buy again.
    purchase = _oneoff(customer, "flowkit")
    OneOffPurchase.objects.filter(pk=purchase.pk).update(dispute_id="du_1", dispute_status="lost")
    customer.plan = "starter"
    customer.save()

    response = signed_in.post("/billing/checkout/", {"plan": "flowkit", "interval": "oneoff"})

    assert response.status_code == 303
    assert len(fake_stripe.calls_to("POST", "/v1/checkout/sessions")) == 1


@pytest.mark.parametrize(
    ("frm", "to", "timing"),
    [
        (("flowkit", "monthly"), ("flowkit", "annual"), "now"),
        (("flowkit", "monthly"), ("launchpack", "monthly"), "now"),
        (("flowkit", "monthly"), ("launchpack", "annual"), "now"),
        (("flowkit", "annual"), ("launchpack", "annual"), "now"),
        (("flowkit", "annual"), ("flowkit", "monthly"), "period_end"),
        (("flowkit", "annual"), ("launchpack", "monthly"), "period_end"),
        (("launchpack", "monthly"), ("flowkit", "monthly"), "period_end"),
        (("launchpack", "annual"), ("flowkit", "annual"), "period_end"),
        (("flowkit", "annual"), ("flowkit", "annual"), None),
    ],
)
def test_when_a_subscription_may_change_price(frm, to, timing):
    from billing.offers import change_timing

    assert change_timing(plan=frm[0], interval=frm[1], to_plan=to[0], to_interval=to[1]) == timing


def test_an_annual_subscriber_is_offered_the_higher_plan_yearly_only(signed_in, synced, subscribe):
    subscribe("flowkit", "annual")

    page = signed_in.get("/pricing/").content.decode()
    refused = signed_in.post("/billing/checkout/", {"plan": "launchpack", "interval": "monthly"})

    assert 'href="/billing/switch/?plan=launchpack"' not in page
    assert 'href="/billing/switch/?plan=launchpack&amp;interval=annual"' in page
    assert refused.status_code == 409
    assert "You pay yearly" in refused.content.decode()


# What a customer does not hold is never shown as held: the old page said "Included in
# what you have" or "You have this plan" whenever an offer was refused.
NEVER = ("Included in what you have", "You have this plan")
BUTTONS = ("Subscribe monthly", "Subscribe yearly", "Pay once", "Switch to")


def _option(body: str, plan: str, interval: str) -> str:
    """The text of one way to pay for `plan` on the pricing page."""
    card = body[body.index(f'id="plan-{plan}"') :]
    end = card.find('<section class="card plan-card')
    card = card[: end if end != -1 else len(card)]
    start = card.index(f"price-option-{interval}")
    return card[start : card.index("</div>", start)]


def _offered_or_explained(body: str) -> dict[tuple[str, str], str]:
    """Each paid plan's three choices as text, checked to be a button or a reason."""
    found = {}
    for plan in ("flowkit", "launchpack"):
        for interval in ("monthly", "annual", "oneoff"):
            html = _option(body, plan, interval)
            text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))
            assert not any(words in text for words in NEVER), (plan, interval, text)
            assert any(b in text for b in BUTTONS) or 'class="muted refusal"' in html, text
            found[(plan, interval)] = text
    return found


def test_an_annual_subscriber_is_told_why_monthly_is_not_sold(signed_in, synced, subscribe):
    subscribe("flowkit", "annual")

    found = _offered_or_explained(signed_in.get("/pricing/").content.decode())

    # The billing page moves a yearly subscription only to its own plan monthly or to a
    # lower plan: LaunchPack monthly is not promised from there.
    assert (
        "You pay yearly for FlowKit: switch to LaunchPack yearly now"
        in (found[("launchpack", "monthly")])
    )
    assert "can start when your paid year ends" not in found[("launchpack", "monthly")]
    assert (
        "You pay yearly for FlowKit: monthly FlowKit can start when your paid year ends"
        in (found[("flowkit", "monthly")])
    )
    assert "You pay yearly for FlowKit: this is your plan." in found[("flowkit", "annual")]
    assert "Switch to LaunchPack yearly" in found[("launchpack", "annual")]


def test_a_monthly_subscriber_is_not_told_they_have_the_one_off(signed_in, synced, subscribe):
    subscribe("flowkit")

    found = _offered_or_explained(signed_in.get("/pricing/").content.decode())

    assert "You pay monthly for FlowKit: this is your plan." in found[("flowkit", "monthly")]
    assert (
        "You pay monthly for FlowKit. While you subscribe, only a higher plan can be bought once."
    ) in found[("flowkit", "oneoff")]
    assert "Pay once" in found[("launchpack", "oneoff")]


def test_a_trialing_customer_is_told_the_trial_must_end_first(
    signed_in, synced, deliver, fake_stripe, catalog, payer
):
    sub = sf.subscription(cus=payer, prc=catalog["flowkit_monthly"], status="trialing")
    fake_stripe.add(sub)
    deliver(sf.event("customer.subscription.created", sub))

    found = _offered_or_explained(signed_in.get("/pricing/").content.decode())

    assert "Your free trial is still running" in found[("launchpack", "monthly")]
    assert "You are trying FlowKit free, then pay monthly" in found[("flowkit", "monthly")]


def test_a_customer_whose_plan_was_cut_in_dunning_is_told_to_pay_not_that_they_have_it(
    signed_in, synced, deliver, fake_stripe, catalog, payer, customer
):
    sub = sf.subscription(cus=payer, prc=catalog["flowkit_monthly"], status="past_due")
    fake_stripe.add(sub)
    deliver(sf.event("customer.subscription.created", sub))
    customer.plan = "starter"  # the grace ended: the subscription stays, the access went
    customer.save()

    found = _offered_or_explained(signed_in.get("/pricing/").content.decode())

    overdue = "Your FlowKit subscription has a payment overdue: pay it from the billing page"
    assert overdue in found[("flowkit", "monthly")]
    assert overdue in found[("flowkit", "oneoff")]


def test_a_subscription_ended_by_dunning_leaves_flowkit_for_sale_where_the_email_leads(
    signed_in, synced, deliver, fake_stripe, catalog, payer, customer
):
    from onboarding.models import OnboardingMessage
    from onboarding.notices import notice_email_render

    sub = sf.subscription(cus=payer, prc=catalog["flowkit_monthly"], status="canceled")
    sub["cancellation_details"] = {"reason": "payment_failed", "comment": None, "feedback": None}
    fake_stripe.add(sub)
    deliver(sf.event("customer.subscription.deleted", sub))
    ended = OnboardingMessage(
        user=customer,
        template="plan_ended",
        plan="starter",
        context={"old_plan": "flowkit", "reason": "payment_failed"},
    )

    link = re.search(r"https?://\S+", notice_email_render(ended).text.split("again:")[1])
    path = "/" + link.group(0).split("/", 3)[3]
    found = _offered_or_explained(signed_in.get(path).content.decode())

    assert "Subscribe monthly" in found[("flowkit", "monthly")]
    assert "Subscribe yearly" in found[("flowkit", "annual")]
    assert "Pay once" in found[("flowkit", "oneoff")]


def test_a_plan_cut_in_dunning_offers_the_way_to_pay_beside_the_reason(
    signed_in, synced, deliver, fake_stripe, catalog, payer, customer
):
    sub = sf.subscription(cus=payer, prc=catalog["flowkit_monthly"], status="past_due")
    fake_stripe.add(sub)
    deliver(sf.event("customer.subscription.created", sub))
    customer.plan = "starter"
    customer.save()

    body = signed_in.get("/pricing/").content.decode()

    action = _option(body, "flowkit", "monthly")
    assert 'class="button button-secondary refusal-action" href="/billing/"' in action
    assert "Pay the overdue renewal" in action


def _comp(customer, plan: str, days: int | None):
    from datetime import timedelta

    from django.utils import timezone

    from billing.models import PlanOverride

    expires = timezone.now() + timedelta(days=days) if days else None
    override = PlanOverride.objects.create(
        user=customer, plan=plan, reason="launch partner", expires_at=expires
    )
    customer.plan = plan
    customer.save()
    return override


def test_a_comped_customer_can_pay_for_the_plan_before_the_comp_ends(
    signed_in, synced, fake_stripe, catalog, customer
):
    from billing.outlook import long_date

    override = _comp(customer, "flowkit", 10)

    found = _offered_or_explained(signed_in.get("/pricing/").content.decode())
    response = signed_in.post("/billing/checkout/", {"plan": "flowkit", "interval": "monthly"})

    until = long_date(override.expires_at)
    said = f"Complimentary FlowKit until {until}; subscribe now to keep it after."
    assert "Subscribe monthly" in found[("flowkit", "monthly")]
    assert said in found[("flowkit", "monthly")]
    assert "Your first payment is taken today" in found[("flowkit", "monthly")]
    assert "Pay once" in found[("flowkit", "oneoff")]
    assert response.status_code == 303
    [params] = fake_stripe.calls_to("POST", "/v1/checkout/sessions")
    assert params["line_items[0][price]"] == catalog["flowkit_monthly"]["id"]


def test_a_comped_customer_can_buy_a_lower_plan_they_will_not_hold_after(
    signed_in, synced, fake_stripe, catalog, customer
):
    _comp(customer, "launchpack", 10)

    found = _offered_or_explained(signed_in.get("/pricing/").content.decode())

    assert "Subscribe monthly" in found[("flowkit", "monthly")]
    assert "subscribe now to keep FlowKit after" in found[("flowkit", "monthly")]


def test_a_comp_for_good_is_said_to_be_complimentary(
    signed_in, synced, fake_stripe, catalog, customer
):
    _comp(customer, "flowkit", None)

    found = _offered_or_explained(signed_in.get("/pricing/").content.decode())
    response = signed_in.post("/billing/checkout/", {"plan": "flowkit", "interval": "monthly"})

    assert "FlowKit is complimentary on your account, for good" in found[("flowkit", "monthly")]
    assert response.status_code == 409


def test_a_subscriber_comped_higher_is_told_the_comp_beside_the_switch(
    signed_in, synced, customer, subscribe
):
    from billing.outlook import long_date

    subscribe("flowkit")
    override = _comp(customer, "launchpack", 10)

    found = _offered_or_explained(signed_in.get("/pricing/").content.decode())

    assert "Switch to LaunchPack" in found[("launchpack", "monthly")]
    assert (
        f"Complimentary LaunchPack until {long_date(override.expires_at)}; switch now to keep "
        "LaunchPack after."
    ) in found[("launchpack", "monthly")]
