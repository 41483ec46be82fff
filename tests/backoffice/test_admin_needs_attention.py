"""The admin index's "needs attention": customers in dunning with what they owe and the
next retry, and disputes waiting for the bank."""

from __future__ import annotations

import re

import pytest

from devtools.stripe_sandbox.disputes import _dispute
from tests.billing import stripe_fakes as sf
from tests.billing.test_dunning_banner import failing  # noqa: F401

pytestmark = pytest.mark.django_db


def _rows(html: str, cls: str) -> list[str]:
    found = re.findall(rf'<tr class="{cls}">(.*?)</tr>', html, re.S)
    return [re.sub(r"(<[^>]+>|\s)+", " ", row).strip() for row in found]


def test_a_customer_in_dunning_is_listed_with_the_amount_and_next_retry(
    client,
    staff_user,
    customer,
    failing,  # noqa: F811
):
    client.force_login(staff_user)

    response = client.get("/admin/")

    assert response.context["backoffice"]["dunning_count"] == 1
    rows = _rows(response.content.decode(), "dunning-row")
    assert len(rows) == 1
    assert customer.email in rows[0]
    assert "£49.00 due, payment failed (1 attempt)" in rows[0]
    assert "next retry 2031-01-04 12:00 UTC" in rows[0]


def test_paid_up_customers_are_not_in_dunning(client, staff_user, customer, subscribe):
    subscribe("flowkit")
    client.force_login(staff_user)

    response = client.get("/admin/")

    assert response.context["backoffice"]["dunning_count"] == 0
    assert _rows(response.content.decode(), "dunning-row") == []


def test_an_open_dispute_is_listed_and_a_closed_one_is_not(
    client, staff_user, customer, deliver, fake_stripe, payer
):
    pi = sf.payment_intent(cus=payer, amount=99000)
    ch = sf.charge(cus=payer, pi=pi)
    dispute = _dispute(ch, "fraudulent")
    fake_stripe.add(pi, ch, dispute)
    deliver(sf.event("charge.dispute.created", dispute))
    client.force_login(staff_user)

    rows = _rows(client.get("/admin/").content.decode(), "dispute-row")

    assert len(rows) == 1
    assert "£990.00 disputed (fraudulent), needs response, evidence due" in rows[0]
    assert customer.email in rows[0]

    fake_stripe.objects[dispute["id"]]["status"] = "lost"
    deliver(sf.event("charge.dispute.closed", fake_stripe.objects[dispute["id"]]))
    assert _rows(client.get("/admin/").content.decode(), "dispute-row") == []


def test_support_staff_without_stripe_views_do_not_see_them(client, support_user, failing):  # noqa: F811
    client.force_login(support_user)
    panel = client.get("/admin/").context["backoffice"]
    assert "dunning" not in panel
    assert "disputes" not in panel
