"""Downgrades at the end of the paid period (a Subscription Schedule), and cancel /
resume at the period end, through the app's pages against the sandbox."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import stripe
from djstripe.models import Subscription, SubscriptionSchedule

from billing.models import PlanChange
from tests.billing import stripe_fakes as sf

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed_in(client, customer):
    client.force_login(customer)
    return client


@pytest.fixture
def launchpack(deliver, fake_stripe, catalog, payer, customer) -> dict:
    """A synced LaunchPack subscription of the signed-in customer, renewing."""
    sub = _renewing(sf.subscription(cus=payer, prc=catalog["launchpack_monthly"]))
    fake_stripe.add(sub)
    assert deliver(sf.event("customer.subscription.created", sub)).status_code == 200
    customer.refresh_from_db()
    assert customer.plan == "launchpack"
    return sub


def _renewing(sub: dict) -> dict:
    # Stripe's example subscription is set to cancel; ours renews unless told.
    sub.update(cancel_at_period_end=False, cancel_at=None, canceled_at=None, schedule=None)
    return sub


def _period_end(sub: dict) -> int:
    return sub["items"]["data"][0]["current_period_end"]


def _long(ts: int) -> str:
    moment = datetime.fromtimestamp(ts, tz=UTC)
    return f"{moment.day} {moment:%B %Y}"


def test_downgrade_page_shows_the_date_and_what_is_lost(signed_in, launchpack):
    response = signed_in.get("/billing/downgrade/?plan=flowkit")

    assert response.status_code == 200
    text = response.content.decode()
    assert f"until <strong>{_long(_period_end(launchpack))}</strong>" in text
    assert "AI concierge" in text or "concierge" in text.lower()
    assert "£49.00 a month" in text


@pytest.mark.parametrize(
    ("behavior", "words"), [("exclusive", "+ VAT"), ("inclusive", "incl. VAT")]
)
def test_with_tax_on_the_downgrade_price_says_how_vat_applies(
    signed_in, launchpack, settings, behavior, words
):
    settings.BILLING_AUTOMATIC_TAX = True
    settings.BILLING_TAX_BEHAVIOR = behavior

    text = signed_in.get("/billing/downgrade/?plan=flowkit").content.decode()

    assert f"£49.00 {words} a month" in text


def test_downgrade_schedules_the_lower_price_from_the_period_end(
    signed_in, launchpack, fake_stripe, catalog, customer
):
    response = signed_in.post("/billing/downgrade/", {"plan": "flowkit"})

    assert response.status_code == 302
    assert response["Location"] == "/billing/"
    created = fake_stripe.calls_to("POST", "/v1/subscription_schedules")
    assert created[0] == {"from_subscription": launchpack["id"]}
    modify = created[1]
    assert modify["phases[0][end_date]"] == str(_period_end(launchpack))
    assert modify["phases[1][items][0][price]"] == catalog["flowkit_monthly"]["id"]
    assert modify["end_behavior"] == "release"
    # Nothing changes now: the customer keeps what they paid for.
    customer.refresh_from_db()
    assert customer.plan == "launchpack"
    assert (
        fake_stripe.objects[launchpack["id"]]["items"]["data"][0]["price"]["id"]
        == (catalog["launchpack_monthly"]["id"])
    )
    assert SubscriptionSchedule.objects.get().stripe_data["status"] == "active"
    page = signed_in.get("/billing/").content.decode()
    assert f"Changes to FlowKit on {_long(_period_end(launchpack))}" in page
    dashboard = signed_in.get("/").content.decode()
    assert f"Changes to FlowKit on {_long(_period_end(launchpack))}" in dashboard


def test_the_renewal_with_the_lower_price_changes_the_plan(
    signed_in, launchpack, fake_stripe, catalog, customer, deliver
):
    signed_in.post("/billing/downgrade/", {"plan": "flowkit"})
    # What Stripe sends when the next phase starts: the subscription on the new price.
    sub = fake_stripe.objects[launchpack["id"]]
    sub["items"]["data"][0]["price"] = catalog["flowkit_monthly"]
    deliver(sf.event("customer.subscription.updated", sub))

    customer.refresh_from_db()
    assert customer.plan == "flowkit"
    change = PlanChange.objects.first()
    assert (change.old_plan, change.new_plan) == ("launchpack", "flowkit")


def test_a_pending_downgrade_can_be_cancelled(signed_in, launchpack, fake_stripe):
    signed_in.post("/billing/downgrade/", {"plan": "flowkit"})
    schedule_id = SubscriptionSchedule.objects.get().id

    response = signed_in.post("/billing/downgrade/cancel/")

    assert response.status_code == 302
    assert fake_stripe.calls_to("POST", f"/v1/subscription_schedules/{schedule_id}/release")
    assert SubscriptionSchedule.objects.get().stripe_data["status"] == "released"
    page = signed_in.get("/billing/").content.decode()
    assert "Changes to FlowKit" not in page
    assert f"Renews on {_long(_period_end(launchpack))}" in page


def test_the_schedule_events_are_synced_by_djstripe(signed_in, launchpack, fake_stripe, deliver):
    signed_in.post("/billing/downgrade/", {"plan": "flowkit"})
    schedule = SubscriptionSchedule.objects.get()
    schedule.delete()

    stored = fake_stripe.objects[schedule.id]
    assert deliver(sf.event("subscription_schedule.updated", stored)).status_code == 200

    assert SubscriptionSchedule.objects.get(id=schedule.id).stripe_data["status"] == "active"


@pytest.mark.parametrize(
    ("plan", "status", "message"),
    [
        ("launchpack", 409, "not lower than your plan"),
        ("starter", 409, "cancel at the end of the period"),
        ("gold", 400, "Choose one of our plans"),
    ],
)
def test_a_downgrade_that_is_not_one_is_refused(
    signed_in, launchpack, fake_stripe, plan, status, message
):
    response = signed_in.post("/billing/downgrade/", {"plan": plan})

    assert response.status_code == status
    assert message in response.content.decode()
    assert not fake_stripe.calls_to("POST", "/v1/subscription_schedules")


def test_a_second_downgrade_while_one_is_planned_is_refused(
    signed_in, deliver, fake_stripe, catalog, payer
):
    # A customer on LaunchPack with FlowKit planned cannot plan another change on top.
    sub = _renewing(sf.subscription(cus=payer, prc=catalog["launchpack_monthly"]))
    fake_stripe.add(sub)
    deliver(sf.event("customer.subscription.created", sub))
    assert signed_in.post("/billing/downgrade/", {"plan": "flowkit"}).status_code == 302

    response = signed_in.post("/billing/downgrade/", {"plan": "flowkit"})

    assert response.status_code == 409
    assert "already planned" in response.content.decode()


def test_without_a_subscription_there_is_nothing_to_change(signed_in, fake_stripe):
    for url in ("/billing/downgrade/", "/billing/cancel/", "/billing/resume/"):
        assert signed_in.post(url, {"plan": "flowkit"}).status_code == 409
    assert fake_stripe.calls == []


def test_cancel_page_shows_the_date_and_what_is_lost(signed_in, launchpack):
    response = signed_in.get("/billing/cancel/")

    text = response.content.decode()
    assert response.status_code == 200
    assert f"ends on <strong>{_long(_period_end(launchpack))}</strong>" in text
    assert "Starter" in text


def test_cancel_at_period_end_then_resume(signed_in, launchpack, fake_stripe, customer):
    response = signed_in.post("/billing/cancel/")

    assert response.status_code == 302
    assert fake_stripe.calls_to("POST", f"/v1/subscriptions/{launchpack['id']}") == [
        {"cancel_at_period_end": "true"}
    ]
    assert Subscription.objects.get().stripe_data["cancel_at_period_end"] is True
    when = _long(_period_end(launchpack))
    assert f"Cancels on {when}" in signed_in.get("/").content.decode()
    customer.refresh_from_db()
    assert customer.plan == "launchpack"  # kept until the date

    assert signed_in.post("/billing/cancel/").status_code == 409  # already set

    assert signed_in.post("/billing/resume/").status_code == 302
    assert Subscription.objects.get().stripe_data["cancel_at_period_end"] is False
    assert f"Renews on {when}" in signed_in.get("/").content.decode()
    assert signed_in.post("/billing/resume/").status_code == 409  # nothing to resume


def test_cancel_releases_a_pending_downgrade_first(signed_in, launchpack, fake_stripe):
    signed_in.post("/billing/downgrade/", {"plan": "flowkit"})
    schedule_id = SubscriptionSchedule.objects.get().id

    response = signed_in.post("/billing/cancel/")

    assert response.status_code == 302
    paths = [path for method, path, _ in fake_stripe.calls if method == "POST"]
    release = paths.index(f"/v1/subscription_schedules/{schedule_id}/release")
    assert release < paths.index(f"/v1/subscriptions/{launchpack['id']}")
    assert Subscription.objects.get().stripe_data["cancel_at_period_end"] is True


def test_a_stripe_failure_is_a_502_and_changes_nothing(signed_in, launchpack, fake_stripe):
    fake_stripe.fail = stripe.APIError("Stripe is down")

    response = signed_in.post("/billing/cancel/")

    assert response.status_code == 502
    assert Subscription.objects.get().stripe_data["cancel_at_period_end"] is False


def test_billing_off_answers_503(signed_in, launchpack, settings):
    settings.BILLING_ENABLED = False
    for url in (
        "/billing/downgrade/",
        "/billing/downgrade/cancel/",
        "/billing/cancel/",
        "/billing/resume/",
    ):
        assert signed_in.post(url, {"plan": "flowkit"}).status_code == 503


def test_the_period_end_pages_need_a_login(client, fake_stripe):
    for url in ("/billing/", "/billing/downgrade/", "/billing/cancel/"):
        response = client.get(url)
        assert response.status_code == 302
        assert "/login/" in response["Location"]
    assert client.post("/billing/resume/").status_code == 302
    assert fake_stripe.calls == []


def test_posts_need_the_csrf_token(customer, launchpack):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(customer)

    assert strict.post("/billing/cancel/").status_code == 403
    assert strict.post("/billing/downgrade/", {"plan": "flowkit"}).status_code == 403


def test_a_schedule_left_with_nothing_planned_is_reused(
    signed_in, launchpack, fake_stripe, deliver, catalog
):
    # What a downgrade that failed between Stripe's two calls leaves: a schedule that
    # only holds the current phase.
    schedule = stripe.SubscriptionSchedule.create(
        from_subscription=launchpack["id"], api_key="sk_test_" + "x" * 24
    )
    deliver(sf.event("customer.subscription.updated", fake_stripe.objects[launchpack["id"]]))
    deliver(sf.event("subscription_schedule.created", fake_stripe.objects[schedule.id]))

    response = signed_in.post("/billing/downgrade/", {"plan": "flowkit"})

    assert response.status_code == 302
    assert SubscriptionSchedule.objects.get().id == schedule.id
    phases = fake_stripe.objects[schedule.id]["phases"]
    assert phases[1]["items"][0]["price"] == catalog["flowkit_monthly"]["id"]
