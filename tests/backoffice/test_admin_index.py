from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.models import User
from backoffice.site import mrr_by_currency
from billing.models import BillingAlert, PlanChange, WebhookDelivery
from onboarding.models import OnboardingMessage

pytestmark = pytest.mark.django_db


def test_the_index_shows_users_per_plan_mrr_and_what_needs_attention(
    client, staff_user, customer, subscribe, django_assert_max_num_queries
):
    subscribe("flowkit")  # 49.00 a month
    User.objects.create_user("a@example.com", plan="launchpack")
    BillingAlert.objects.create(kind="unknown_price", stripe_id="price_odd")
    WebhookDelivery.objects.create(
        event_id="evt_broken", event_type="invoice.paid", state="failed", last_error="KeyError"
    )
    OnboardingMessage.objects.create(
        user=customer, channel="email", template="welcome", plan="flowkit", trigger="t",
        status="failed",
    )  # fmt: skip
    OnboardingMessage.objects.create(
        user=customer, channel="sms", template="welcome", plan="flowkit", trigger="t",
        attempts=1, next_attempt_at=timezone.now() + timedelta(minutes=2),
    )  # fmt: skip
    client.force_login(staff_user)

    # 20, three for the Stripe webhook backlog and one for the last retention run
    # (Background work).
    with django_assert_max_num_queries(24):
        response = client.get("/admin/")

    panel = response.context["backoffice"]
    assert [(row["label"], row["count"]) for row in panel["plans"]] == [
        ("Starter", 0),  # the staff user is not a customer
        ("FlowKit", 1),
        ("LaunchPack", 1),
    ]
    assert panel["mrr"] == ["£49.00"]
    assert panel["failed_messages"] == 1
    assert panel["retrying_messages"] == 1  # queued, its next attempt planned
    body = response.content.decode()
    assert "£49.00" in body
    assert "Users per plan" in body
    assert "price_odd" in body
    assert "KeyError" in body
    assert PlanChange.objects.get().user.email in body


def test_the_panel_only_shows_what_the_member_may_view(client, support_user):
    client.force_login(support_user)

    panel = client.get("/admin/").context["backoffice"]

    assert "plans" in panel
    assert "plan_changes" in panel
    assert "mrr" not in panel
    assert "failed_webhooks" not in panel


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


def _delivery(n: int, state: str) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from billing.models import WebhookDelivery

    WebhookDelivery.objects.create(
        event_id=f"evt_{state}_{n}",
        event_type="invoice.paid",
        state=state,
        received_at=timezone.now() - timedelta(minutes=n + 3),
    )


def test_background_work_shows_the_webhook_backlog_and_links_the_failures(client, billing_admin):
    for n, state in enumerate(["pending", "pending", "failed", "gave_up", "processed"]):
        _delivery(n, state)
    client.force_login(billing_admin)

    page = client.get("/admin/").content.decode()

    assert '<td id="webhook-backlog">2, oldest received 4 min ago</td>' in page
    assert '<strong class="errornote">2</strong>' in page
    failures = "/admin/billing/webhookdelivery/?state__in=failed,gave_up"
    assert f'href="{failures}"' in page
    listed = client.get(failures).context["cl"]
    assert sorted(d.state for d in listed.result_list) == ["failed", "gave_up"]


def test_staff_who_may_not_view_deliveries_see_no_webhook_backlog(client, support_user):
    _delivery(0, "failed")
    client.force_login(support_user)

    page = client.get("/admin/").content.decode()

    assert "webhook-backlog" not in page
    assert "webhook-failed" not in page


def test_needs_attention_counts_failed_deliveries_not_the_backlog(client, billing_admin):
    from djstripe.models import WebhookEventTrigger

    for n, state in enumerate(["pending", "pending", "failed", "gave_up", "processed"]):
        _delivery(n, state)
    # dj-stripe's trigger of a delivery still waiting for a worker is "unprocessed".
    WebhookEventTrigger.objects.create(
        remote_ip="127.0.0.1", headers={}, body="{}", valid=True, processed=False
    )
    client.force_login(billing_admin)

    panel = client.get("/admin/").context["backoffice"]

    assert panel["failed_webhooks_count"] == 2
    assert sorted(d.event_id for d in panel["failed_webhooks"]) == ["evt_failed_2", "evt_gave_up_3"]
    assert panel["failed_webhooks_url"].endswith("?state__in=failed,gave_up")


def test_billing_admins_see_the_workers_heartbeats(client, billing_admin):
    assert billing_admin.has_perm("smartflow.view_workerheartbeat")
    client.force_login(billing_admin)

    panel = client.get("/admin/").context["backoffice"]

    assert panel["work"]["workers"] == []  # none running: the page says so


def test_the_messages_waiting_for_a_retry_link_lists_exactly_them(client, staff_user, customer):
    def message(trigger: str, **fields):
        return OnboardingMessage.objects.create(
            user=customer, channel="email", template="welcome", plan="flowkit",
            trigger=trigger, **fields,
        )  # fmt: skip

    retrying = message("retry", attempts=1, next_attempt_at=timezone.now())
    message("first", attempts=0)  # not sent yet: not a retry
    message("failed", status="failed", attempts=5)
    client.force_login(staff_user)

    panel = client.get("/admin/").context["backoffice"]
    listed = client.get(panel["retrying_messages_url"])

    assert panel["retrying_messages"] == 1
    assert [m.pk for m in listed.context["cl"].result_list] == [retrying.pk]
