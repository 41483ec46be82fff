from __future__ import annotations

from decimal import Decimal

import pytest
from djstripe.models import WebhookEventTrigger

from accounts.admin_site import mrr_by_currency
from accounts.models import User
from billing.models import BillingAlert, PlanChange
from onboarding.models import OnboardingMessage

pytestmark = pytest.mark.django_db


def test_the_index_shows_users_per_plan_mrr_and_what_needs_attention(
    client, staff_user, customer, subscribe, django_assert_max_num_queries
):
    subscribe("flowkit")  # 49.00 a month
    User.objects.create_user("a@example.com", plan="launchpack")
    BillingAlert.objects.create(kind="unknown_price", stripe_id="price_odd")
    WebhookEventTrigger.objects.create(
        remote_ip="127.0.0.1",
        headers={},
        body="{}",
        valid=True,
        processed=False,
        exception="KeyError",
    )
    OnboardingMessage.objects.create(
        user=customer, channel="email", template="welcome", plan="flowkit", trigger="t",
        status="failed",
    )  # fmt: skip
    client.force_login(staff_user)

    with django_assert_max_num_queries(20):
        response = client.get("/admin/")

    panel = response.context["backoffice"]
    assert [(row["label"], row["count"]) for row in panel["plans"]] == [
        ("Starter", 1),  # the staff user
        ("FlowKit", 1),
        ("LaunchPack", 1),
    ]
    assert panel["mrr"] == ["£49.00"]
    assert panel["failed_messages"] == 1
    body = response.content.decode()
    assert "£49.00" in body and "Users per plan" in body
    assert "price_odd" in body and "KeyError" in body
    assert PlanChange.objects.get().user.email in body


def test_the_panel_only_shows_what_the_member_may_view(client, support_user):
    client.force_login(support_user)

    panel = client.get("/admin/").context["backoffice"]

    assert "plans" in panel and "plan_changes" in panel
    assert "mrr" not in panel and "failed_webhooks" not in panel


def test_mrr_is_monthly_normalised_and_counts_quantity():
    def sub(amount, interval, count=1, quantity=1):
        price = {
            "unit_amount": amount,
            "currency": "gbp",
            "recurring": {"interval": interval, "interval_count": count},
        }
        return {"items": {"data": [{"price": price, "quantity": quantity}]}}

    total = mrr_by_currency(
        [sub(4900, "month", quantity=2), sub(120000, "year"), sub(3000, "month", 3)]
    )

    assert total == {"gbp": Decimal("98") + Decimal("100") + Decimal("10")}
