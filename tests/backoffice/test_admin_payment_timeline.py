"""The user page's payment timeline: every money movement, in time order, in currency."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from djstripe.models import Charge, PaymentIntent

from billing.models import OneOffPurchase
from tests.backoffice.test_admin_djstripe import sandbox_made  # noqa: F401
from tests.billing import stripe_fakes as sf

pytestmark = pytest.mark.django_db


def _timeline(client, user) -> list[str]:
    page = client.get(f"/admin/accounts/user/{user.pk}/change/").content.decode()
    assert 'id="payment-timeline"' in page
    table = page.split('id="payment-timeline"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr class=\"timeline-(\w+)\">(.*?)</tr>", table, re.S)
    tags_and_space = re.compile(r"(<[^>]+>|\s)+")
    return [f"{kind}: {tags_and_space.sub(' ', body).strip()}" for kind, body in rows]


def test_the_timeline_shows_invoices_payments_failures_authentications_and_disputes(
    client,
    staff_user,
    customer,
    fake_stripe,
    sandbox_made,  # noqa: F811
):
    cus = {"id": sandbox_made["invoice"].customer}
    failed_pi = sf.payment_intent(cus=cus, amount=9900)
    failed_pi.update(status="requires_payment_method", created=sandbox_made["invoice"].created + 60)
    failed = sf.charge(cus=cus, pi=failed_pi)
    failed.update(status="failed", paid=False, failure_message="Your card was declined.")
    failed["created"] = failed_pi["created"]
    waiting = sf.payment_intent(cus=cus, amount=9900)
    waiting.update(status="requires_action", created=failed_pi["created"] + 60)
    fake_stripe.add(failed_pi, failed, waiting)
    PaymentIntent.sync_from_stripe_data(failed_pi)
    Charge.sync_from_stripe_data(failed)
    PaymentIntent.sync_from_stripe_data(waiting)
    OneOffPurchase.objects.create(
        user=customer,
        plan="launchpack",
        checkout_session_id="cs_x",
        amount=99000,
        currency="gbp",
        paid_at=datetime.fromtimestamp(waiting["created"] + 60, tz=UTC),
    )
    client.force_login(staff_user)

    rows = _timeline(client, customer)

    number = sandbox_made["invoice"].number
    text = "\n".join(rows)
    issued = f"Invoice {number} issued"
    assert any(r.startswith("invoice:") and issued in r and "£49.00" in r for r in rows)
    assert any(r.startswith("invoice:") and f"Invoice {number} paid" in r for r in rows)
    paid = "Payment succeeded"
    assert any(r.startswith("payment:") and paid in r and "£49.00" in r for r in rows)
    assert any(
        r.startswith("failure:") and "Your card was declined." in r and "£99.00" in r for r in rows
    )
    assert any(r.startswith("authentication:") and "£99.00" in r for r in rows)
    assert any(
        r.startswith("dispute:") and "fraudulent" in r and "needs response" in r and "£48.00" in r
        for r in rows
    )
    assert any(
        r.startswith("refund:") and "requested by customer" in r and "£1.00" in r for r in rows
    )
    assert any(r.startswith("purchase:") and "LaunchPack" in r and "£990.00" in r for r in rows)
    assert "4900" not in text
    assert "9900" not in text  # never minor units
    kinds = [r.split(":")[0] for r in rows]
    # Oldest first: the paid subscription, the failed attempt, the authentication, the
    # one-off bought after them.
    assert kinds.index("failure") < kinds.index("authentication") < kinds.index("purchase")
    assert kinds.index("payment") < kinds.index("failure")


def test_a_user_without_payments_says_so(client, staff_user, customer):
    client.force_login(staff_user)
    page = client.get(f"/admin/accounts/user/{customer.pk}/change/").content.decode()
    assert "No payments yet." in page


def test_the_customers_cancellation_request_and_reason_are_on_the_user_page(
    client, staff_user, customer, fake_stripe, catalog, payer, deliver
):
    sub = sf.subscription(cus=payer, prc=catalog["flowkit_monthly"])
    fake_stripe.add(sub)
    deliver(sf.event("customer.subscription.created", sub))
    ends = sub["items"]["data"][0]["current_period_end"]
    sub.update(
        cancel_at_period_end=True,
        cancel_at=ends,
        cancellation_details={"comment": None, "feedback": "unused", "reason": None},
    )
    previous = {"cancel_at_period_end": False, "cancel_at": None}
    deliver(sf.event("customer.subscription.updated", sub, previous=previous))
    client.force_login(staff_user)

    rows = _timeline(client, customer)

    day = f"{datetime.fromtimestamp(ends, tz=UTC):%Y-%m-%d}"
    assert any(
        row.startswith("request: ")
        and f"Cancellation requested: the subscription ends {day}; reason given: unused" in row
        for row in rows
    ), rows
