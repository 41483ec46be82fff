"""A one-off of a higher plan bought while subscribed ends the subscription at period end."""

from __future__ import annotations

import pytest

from tests.billing import stripe_fakes as sf
from tests.billing.test_webhook_checkout import _oneoff_session

pytestmark = pytest.mark.django_db


def test_a_paid_higher_oneoff_cancels_the_subscription_at_period_end_once(
    client, deliver, fake_stripe, catalog, payer, customer, subscribe
):
    sub = subscribe("flowkit")
    session, _pi, _ch = _oneoff_session(
        fake_stripe, payer, catalog["launchpack_oneoff"], customer.pk
    )

    # The webhook (twice, as Stripe may) and the success page all fulfil it.
    deliver(sf.event("checkout.session.completed", session))
    deliver(sf.event("checkout.session.completed", session))
    client.force_login(customer)
    assert client.get(f"/billing/success/?session_id={session['id']}").status_code == 200

    # Marked as the one-off's doing: its own message tells the cancellation.
    assert fake_stripe.calls_to("POST", f"/v1/subscriptions/{sub['id']}") == [
        {"cancel_at_period_end": "true", "metadata[ended_by_oneoff]": session["id"]}
    ]
    stored = fake_stripe.objects[sub["id"]]
    assert (stored["status"], stored["cancel_at_period_end"]) == ("active", True)
    customer.refresh_from_db()
    assert customer.plan == "launchpack"


def test_an_unpaid_oneoff_leaves_the_subscription_alone(
    deliver, fake_stripe, catalog, payer, customer, subscribe
):
    sub = subscribe("flowkit")
    session, _pi, _ch = _oneoff_session(
        fake_stripe, payer, catalog["launchpack_oneoff"], customer.pk
    )
    session.update(status="open", payment_status="unpaid")

    deliver(sf.event("checkout.session.completed", session))

    assert fake_stripe.calls_to("POST", f"/v1/subscriptions/{sub['id']}") == []
    assert fake_stripe.objects[sub["id"]]["cancel_at_period_end"] is False


def test_a_lower_oneoff_does_not_end_a_higher_subscription(
    deliver, fake_stripe, catalog, payer, customer, subscribe
):
    # Bought before this rule, or by staff: the subscription still sells more.
    sub = subscribe("launchpack")
    session, _pi, _ch = _oneoff_session(fake_stripe, payer, catalog["flowkit_oneoff"], customer.pk)

    deliver(sf.event("checkout.session.completed", session))

    assert fake_stripe.calls_to("POST", f"/v1/subscriptions/{sub['id']}") == []
