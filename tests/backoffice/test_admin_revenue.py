"""The index's figures: users per plan counts customers, MRR leaves out subscriptions
set to cancel (shown beside it as 'ending'), and amounts are shown in their currency."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from djstripe.models import Subscription

from accounts.models import User
from backoffice.site import money_format, subscription_ending
from billing.models import OneOffPurchase
from tests.billing import stripe_fakes as sf

pytestmark = pytest.mark.django_db


def test_users_per_plan_counts_customers_not_staff(client, staff_user, support_user, customer):
    User.objects.create_user("b@example.com", plan="flowkit")
    client.force_login(staff_user)

    panel = client.get("/admin/").context["backoffice"]

    counts = {row["label"]: row["count"] for row in panel["plans"]}
    assert counts == {"Starter": 1, "FlowKit": 1, "LaunchPack": 0}  # not the two staff
    starter = panel["plans"][0]["url"]
    listed = client.get(starter).context["cl"].result_list
    assert [u.email for u in listed] == [customer.email]


def test_mrr_leaves_out_subscriptions_set_to_cancel_and_shows_them_as_ending(
    client, staff_user, subscribe
):
    flowkit = subscribe("flowkit")  # £49.00 a month
    subscribe("launchpack", customer=sf.customer(email="other@example.com"))  # £99.00 a month
    row = Subscription.objects.get(id=flowkit["id"])
    row.stripe_data = {**row.stripe_data, "cancel_at_period_end": True}
    row.save()
    client.force_login(staff_user)

    response = client.get("/admin/")

    panel = response.context["backoffice"]
    assert panel["mrr"] == ["£99.00"]
    assert (panel["mrr_ending"], panel["mrr_ending_count"]) == (["£49.00"], 1)
    body = response.content.decode()
    assert '<td id="mrr">£99.00</td>' in body
    assert '<td id="mrr-ending">£49.00</td>' in body


def test_nothing_ending_shows_no_ending_row(client, staff_user, subscribe):
    subscribe("flowkit")
    client.force_login(staff_user)

    response = client.get("/admin/")

    assert response.context["backoffice"]["mrr_ending"] == []
    assert 'id="mrr-ending"' not in response.content.decode()


def test_a_subscription_cancelling_on_a_date_is_ending_too():
    assert subscription_ending({"cancel_at": 1_900_000_000, "cancel_at_period_end": False})
    assert subscription_ending({"cancel_at_period_end": True})
    assert not subscription_ending({"cancel_at": None, "cancel_at_period_end": False})


def test_amounts_are_in_their_currency():
    assert money_format(Decimal("49"), "gbp") == "£49.00"
    assert money_format(Decimal("1234.5"), "usd") == "$1,234.50"
    assert money_format(Decimal("4900"), "jpy") == "4,900 JPY"  # no hundredths of a yen
    assert money_format(Decimal("12.3"), "chf") == "12.30 CHF"


def test_one_off_purchases_show_the_amount_in_its_currency_not_pence(client, staff_user, customer):
    purchase = OneOffPurchase.objects.create(
        user=customer,
        plan="launchpack",
        amount=99000,
        currency="gbp",
        checkout_session_id="cs_1",
        paid_at=datetime(2026, 1, 2, tzinfo=UTC),
    )
    client.force_login(staff_user)

    listing = client.get("/admin/billing/oneoffpurchase/").content.decode()
    detail = client.get(f"/admin/billing/oneoffpurchase/{purchase.pk}/change/").content.decode()

    assert "£990.00" in listing
    assert "99000" not in listing
    assert "£990.00" in detail
    assert "99000" not in detail
