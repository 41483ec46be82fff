"""The account standing's access: the plan, why the customer has it, until when, and
what they hold after (issue 27: the standing's "access"; defect 6: a comp says so)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from billing.models import OneOffPurchase
from billing.outlook import long_date
from billing.overrides import override_grant
from billing.standing import access_for, pending_for
from tests.billing import stripe_fakes as sf

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed_in(client, customer):
    client.force_login(customer)
    return client


def _text(response) -> str:
    """The page's words as a reader sees them (no space a tag left before punctuation)."""
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))
    return re.sub(r" ([:,.;/])", r"\1", text)


def _comp(customer, staff_user, plan: str, days: int | None):
    staff_user.is_superuser = True
    staff_user.save()
    expires = timezone.now() + timedelta(days=days) if days else None
    return override_grant(
        user=customer,
        plan=plan,
        reason="launch partner",
        expires_at=expires,
        notify=False,
        actor=staff_user,
    )


def test_a_comp_that_ends_says_complimentary_until_when_and_back_to_starter(
    signed_in, customer, staff_user
):
    override = _comp(customer, staff_user, "flowkit", 10)

    access = access_for(customer)

    assert (access.plan, access.why, access.until) == ("flowkit", "comp", override.expires_at)
    assert access.after == "starter"
    until = long_date(override.expires_at)
    said = f"Complimentary FlowKit until {until}: after that, back to Starter"
    assert said in _text(signed_in.get("/"))
    assert said in _text(signed_in.get("/billing/"))


def test_a_comp_above_a_paid_plan_says_it_goes_back_to_the_paid_plan(
    signed_in, customer, staff_user, subscribe
):
    subscribe("flowkit")
    override = _comp(customer, staff_user, "launchpack", 10)

    access = access_for(customer)

    assert (access.plan, access.why, access.after) == ("launchpack", "comp", "flowkit")
    until = long_date(override.expires_at)
    assert (
        f"Complimentary LaunchPack until {until}: after that, back to FlowKit, which you pay for"
        in _text(signed_in.get("/"))
    )


def test_a_comp_for_good_has_no_end(customer, staff_user):
    _comp(customer, staff_user, "flowkit", None)

    access = access_for(customer)

    assert (access.why, access.until, access.after) == ("comp", None, None)


def test_a_trial_says_until_when_and_what_is_charged_then(signed_in, customer, subscribe):
    ends = sf.NOW + 14 * 86400
    subscribe("flowkit", trial_days=14)

    access = access_for(customer)

    assert (access.plan, access.why) == ("flowkit", "trial")
    assert access.until == datetime.fromtimestamp(ends, tz=UTC)
    assert f"Free trial of FlowKit until {long_date(access.until)}" in _text(signed_in.get("/"))


def test_a_subscription_set_to_cancel_says_until_when_and_then_starter(
    signed_in, customer, subscribe
):
    sub = subscribe("flowkit", cancel_at_period_end=True)

    access = access_for(customer)

    end = sub["items"]["data"][0]["current_period_end"]
    assert (access.why, access.until, access.after) == (
        "subscription",
        datetime.fromtimestamp(end, tz=UTC),
        "starter",
    )
    assert "through your monthly subscription, until" in _text(signed_in.get("/billing/"))
    # The same date is what the standing has pending: the end of the subscription.
    assert pending_for(customer).cancels_on == access.until


def test_a_subscription_that_renews_has_no_end(customer, subscribe):
    subscribe("flowkit", "annual")

    access = access_for(customer)

    assert (access.why, access.until, access.interval) == ("subscription", None, "annual")


def test_a_oneoff_is_for_good_and_a_customer_with_nothing_is_on_starter(customer):
    assert access_for(customer).why == "free"
    OneOffPurchase.objects.create(
        user=customer, plan="flowkit", checkout_session_id="cs_1", amount=1, currency="gbp"
    )

    access = access_for(customer)

    assert (access.plan, access.why, access.until) == ("flowkit", "oneoff", None)
