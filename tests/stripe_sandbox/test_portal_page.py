from __future__ import annotations

import stripe

from stripe_sandbox import store
from tests.stripe_sandbox.helpers import event_types

RETURN_URL = "http://testserver/dashboard/"


def _portal(customer_id: str) -> stripe.billing_portal.Session:
    return stripe.billing_portal.Session.create(customer=customer_id, return_url=RETURN_URL)


def test_portal_session_url_points_at_the_sandbox_page(stripe_customer):
    portal = _portal(stripe_customer.id)

    assert portal.id.startswith("bps_")
    assert portal.url == f"http://testserver/sandbox/portal/{portal.id}/"


def test_portal_lists_the_subscription_and_other_plans(client, subscribed):
    portal = _portal(subscribed.customer)

    page = client.get(f"/sandbox/portal/{portal.id}/").content.decode()

    assert subscribed.id in page
    assert "SmartFlow Flowkit" in page and "£49.00" in page
    assert "SmartFlow Launchpack: £99.00 per month" in page


def test_cancel_now_ends_the_subscription(client, subscribed):
    portal = _portal(subscribed.customer)

    response = client.post(
        f"/sandbox/portal/{portal.id}/", {"action": "cancel_now", "subscription": subscribed.id}
    )

    assert response.status_code == 302 and response["Location"] == RETURN_URL
    assert stripe.Subscription.retrieve(subscribed.id).status == "canceled"
    assert event_types()[-1] == "customer.subscription.deleted"


def test_cancel_at_period_end_keeps_it_active_until_then(client, subscribed):
    portal = _portal(subscribed.customer)

    client.post(
        f"/sandbox/portal/{portal.id}/",
        {"action": "cancel_at_period_end", "subscription": subscribed.id},
    )

    sub = stripe.Subscription.retrieve(subscribed.id)
    assert sub.status == "active" and sub.cancel_at_period_end is True
    assert sub.cancel_at == sub["items"].data[0].current_period_end
    event = stripe.Event.list(type="customer.subscription.updated", limit=1).data[0]
    assert event.data.previous_attributes["cancel_at_period_end"] is False


def test_switching_plan_changes_the_price_and_invoices_the_proration(client, subscribed, prices):
    portal = _portal(subscribed.customer)
    before = event_types()

    client.post(
        f"/sandbox/portal/{portal.id}/",
        {
            "action": "switch",
            "subscription": subscribed.id,
            "price": prices["launchpack_monthly"].id,
        },
    )

    sub = stripe.Subscription.retrieve(subscribed.id, expand=["latest_invoice"])
    item = sub["items"].data[0]
    assert item.id == subscribed["items"].data[0].id
    assert item.price.id == prices["launchpack_monthly"].id
    invoice = sub.latest_invoice
    assert invoice.billing_reason == "subscription_update" and invoice.status == "paid"
    assert [line.amount < 0 for line in invoice.lines.data] == [True, False]
    new = event_types()[len(before) :]
    assert new[0] == "customer.subscription.updated"
    assert new[-2:] == ["invoice.paid", "invoice.payment_succeeded"]
    event = stripe.Event.list(type="customer.subscription.updated", limit=1).data[0]
    old_item = event.data.previous_attributes["items"]["data"][0]
    assert old_item["price"]["id"] == prices["flowkit_monthly"].id


def test_portal_refuses_another_customers_subscription(client, subscribed):
    other = stripe.Customer.create(email="other@example.com")
    portal = _portal(other.id)

    response = client.post(
        f"/sandbox/portal/{portal.id}/", {"action": "cancel_now", "subscription": subscribed.id}
    )

    assert response.status_code == 404
    assert store.find(subscribed.id)["status"] == "active"


def test_unknown_portal_session_is_404(client, db):
    assert client.get("/sandbox/portal/bps_nope/").status_code == 404
