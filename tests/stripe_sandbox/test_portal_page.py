from __future__ import annotations

import re
from typing import Any

import pytest
import stripe

from devtools.stripe_sandbox import store
from tests.stripe_sandbox.helpers import event_types

RETURN_URL = "http://testserver/dashboard/"
REASONS = ["too_expensive", "unused", "other"]


def _portal(customer_id: str, configuration: str | None = None) -> stripe.billing_portal.Session:
    extra = {"configuration": configuration} if configuration else {}
    return stripe.billing_portal.Session.create(
        customer=customer_id, return_url=RETURN_URL, **extra
    )


def _app_like_configuration(**cancel: Any) -> stripe.billing_portal.Configuration:
    """What SmartFlow asks for: card, invoices, cancel at period end with a reason, and
    no plan switching."""
    return stripe.billing_portal.Configuration.create(
        features={
            "payment_method_update": {"enabled": True},
            "invoice_history": {"enabled": True},
            "subscription_cancel": {
                "enabled": True,
                "mode": "at_period_end",
                "cancellation_reason": {"enabled": True, "options": REASONS},
                **cancel,
            },
            "subscription_update": {"enabled": False},
        }
    )


def test_portal_session_url_points_at_the_sandbox_page(stripe_customer):
    portal = _portal(stripe_customer.id)

    assert portal.id.startswith("bps_")
    assert portal.url == f"http://testserver/sandbox/portal/{portal.id}/"


def test_portal_lists_the_subscription_and_other_plans(client, subscribed):
    portal = _portal(subscribed.customer)

    page = client.get(f"/sandbox/portal/{portal.id}/").content.decode()

    assert subscribed.id in page
    assert "SmartFlow Flowkit" in page
    assert "£49.00" in page
    assert "SmartFlow Launchpack: £99.00 per month" in page


def test_cancel_now_ends_the_subscription(client, subscribed):
    portal = _portal(subscribed.customer)

    response = client.post(
        f"/sandbox/portal/{portal.id}/", {"action": "cancel_now", "subscription": subscribed.id}
    )

    assert response.status_code == 302
    assert response["Location"] == RETURN_URL
    assert stripe.Subscription.retrieve(subscribed.id).status == "canceled"
    assert event_types()[-1] == "customer.subscription.deleted"


def test_cancel_at_period_end_keeps_it_active_until_then(client, subscribed):
    # One cancellation per configuration, as at Stripe: this one's mode is at_period_end.
    portal = _portal(subscribed.customer, _app_like_configuration().id)

    client.post(
        f"/sandbox/portal/{portal.id}/",
        {"action": "cancel_at_period_end", "subscription": subscribed.id},
    )

    sub = stripe.Subscription.retrieve(subscribed.id)
    assert sub.status == "active"
    assert sub.cancel_at_period_end is True
    assert sub.cancel_at == sub["items"].data[0].current_period_end
    event = stripe.Event.list(type="customer.subscription.updated", limit=1).data[0]
    assert event.data.previous_attributes["cancel_at_period_end"] is False


def test_switching_plan_changes_the_price_and_invoices_the_proration(client, subscribed, prices):
    # The default configuration (the dashboard's settings) switches with always_invoice.
    portal = _portal(subscribed.customer)
    before = event_types()
    switch = {"subscription": subscribed.id, "price": prices["launchpack_monthly"].id}

    # The first click shows what is charged, and changes nothing.
    shown = client.post(f"/sandbox/portal/{portal.id}/", {"action": "switch", **switch})
    assert shown.status_code == 200
    assert event_types() == before
    client.post(f"/sandbox/portal/{portal.id}/", {"action": "switch_confirm", **switch})

    sub = stripe.Subscription.retrieve(subscribed.id, expand=["latest_invoice"])
    item = sub["items"].data[0]
    assert item.id == subscribed["items"].data[0].id
    assert item.price.id == prices["launchpack_monthly"].id
    invoice = sub.latest_invoice
    assert invoice.billing_reason == "subscription_update"
    assert invoice.status == "paid"
    assert [line.amount < 0 for line in invoice.lines.data] == [True, False]
    new = event_types()[len(before) :]
    assert new[0] == "customer.subscription.updated"
    assert new[-2:] == ["invoice.paid", "invoice.payment_succeeded"]
    event = stripe.Event.list(type="customer.subscription.updated", limit=1).data[0]
    old_item = event.data.previous_attributes["items"]["data"][0]
    assert old_item["price"]["id"] == prices["flowkit_monthly"].id
    assert (
        f'Charged today: <strong class="sandbox-switch-amount">£{invoice.amount_paid / 100:.2f}'
        in (shown.content.decode())
    )


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


def test_the_apps_configuration_offers_no_plan_switch_and_refuses_one(client, subscribed, prices):
    portal = _portal(subscribed.customer, _app_like_configuration().id)
    before = event_types()

    page = client.get(f"/sandbox/portal/{portal.id}/").content.decode()
    refused = client.post(
        f"/sandbox/portal/{portal.id}/",
        {
            "action": "switch_confirm",
            "subscription": subscribed.id,
            "price": prices["launchpack_monthly"].id,
        },
    )

    assert "Switch to" not in page
    assert "Cancel now" not in page
    assert "Cancel at period end" in page
    assert refused.status_code == 403
    sub = stripe.Subscription.retrieve(subscribed.id)
    assert sub["items"].data[0].price.id == prices["flowkit_monthly"].id
    assert event_types() == before  # nothing charged, nothing changed


def test_the_apps_configuration_refuses_an_immediate_cancel(client, subscribed):
    portal = _portal(subscribed.customer, _app_like_configuration().id)

    refused = client.post(
        f"/sandbox/portal/{portal.id}/", {"action": "cancel_now", "subscription": subscribed.id}
    )

    assert refused.status_code == 403
    sub = stripe.Subscription.retrieve(subscribed.id)
    assert sub.status == "active"
    assert sub.cancel_at_period_end is False


def test_the_cancellation_reason_is_recorded_as_stripes_feedback(client, subscribed):
    portal = _portal(subscribed.customer, _app_like_configuration().id)

    page = client.get(f"/sandbox/portal/{portal.id}/").content.decode()
    client.post(
        f"/sandbox/portal/{portal.id}/",
        {"action": "cancel_at_period_end", "subscription": subscribed.id, "reason": "unused"},
    )

    assert "Why are you cancelling?" in page
    assert "I don&#x27;t use the service enough" in page
    sub = stripe.Subscription.retrieve(subscribed.id)
    assert sub.cancellation_details.feedback == "unused"
    assert sub.cancellation_details.reason == "cancellation_requested"


def test_a_cancelled_subscription_can_be_renewed_in_the_portal(client, subscribed):
    portal = _portal(subscribed.customer, _app_like_configuration().id)
    url = f"/sandbox/portal/{portal.id}/"
    client.post(url, {"action": "cancel_at_period_end", "subscription": subscribed.id})

    assert "Don't cancel" in client.get(url).content.decode()
    client.post(url, {"action": "renew", "subscription": subscribed.id})

    sub = stripe.Subscription.retrieve(subscribed.id)
    assert sub.cancel_at_period_end is False
    assert sub.cancel_at is None


def test_a_card_update_is_refused_when_the_configuration_turns_it_off(client, subscribed):
    config = stripe.billing_portal.Configuration.create(
        features={"payment_method_update": {"enabled": False}}
    )
    portal = _portal(subscribed.customer, config.id)

    page = client.get(f"/sandbox/portal/{portal.id}/").content.decode()
    refused = client.post(
        f"/sandbox/portal/{portal.id}/",
        {"action": "update_card", "card_number": "4242 4242 4242 4242"},
    )

    assert "Update card" not in page
    assert refused.status_code == 403


# --- The configurations API -----------------------------------------------------------


def test_a_configuration_has_stripes_defaults_for_what_it_does_not_name(db):
    config = stripe.billing_portal.Configuration.create(
        features={"invoice_history": {"enabled": True}},
        default_return_url="http://testserver/billing/",
        metadata={"app": "x"},
    )

    assert config.id.startswith("bpc_")
    assert config.is_default is False
    assert config.active
    features = config.features
    assert features.invoice_history.enabled is True
    assert features.subscription_cancel.enabled is False
    assert features.subscription_cancel.mode == "at_period_end"
    assert features.subscription_cancel.proration_behavior == "none"
    assert features.subscription_update.enabled is False
    assert features.customer_update.allowed_updates == []
    assert stripe.billing_portal.Configuration.retrieve(config.id).to_dict()["metadata"] == {
        "app": "x"
    }
    assert [c.id for c in stripe.billing_portal.Configuration.list(active=True).data] == [config.id]


def test_a_configuration_update_changes_only_what_it_names(db):
    config = _app_like_configuration()

    changed = stripe.billing_portal.Configuration.modify(
        config.id, features={"subscription_cancel": {"mode": "immediately"}}
    )

    assert changed.features.subscription_cancel.mode == "immediately"
    assert changed.features.subscription_cancel.cancellation_reason.options == REASONS
    assert changed.features.payment_method_update.enabled is True
    assert "billing_portal.configuration.updated" in event_types()


@pytest.mark.parametrize(
    ("features", "param"),
    [
        (
            {"invoice_history": {"enabled": True, "colour": "red"}},
            "features[invoice_history][colour]",
        ),
        (
            {"subscription_cancel": {"enabled": True, "mode": "later"}},
            "features[subscription_cancel][mode]",
        ),
        (
            {"subscription_cancel": {"mode": "at_period_end"}},
            "features[subscription_cancel][enabled]",
        ),
        (
            {"subscription_cancel": {"enabled": True, "proration_behavior": "always_invoice"}},
            "features[subscription_cancel][proration_behavior]",
        ),
        ({"subscription_update": {"enabled": True}}, "features[subscription_update]"),
    ],
)
def test_a_configuration_stripe_would_refuse_is_refused(db, features, param):
    with pytest.raises(stripe.InvalidRequestError) as refused:
        stripe.billing_portal.Configuration.create(features=features)

    assert refused.value.param == param
    assert not store.all_of("billing_portal.configuration")


def test_a_session_needs_an_existing_active_configuration(stripe_customer):
    config = _app_like_configuration()
    stripe.billing_portal.Configuration.modify(config.id, active=False)

    for configuration in ("bpc_nope", config.id):
        with pytest.raises(stripe.InvalidRequestError) as refused:
            _portal(stripe_customer.id, configuration)
        assert refused.value.param == "configuration"


def test_a_session_without_configuration_uses_the_default_one(stripe_customer):
    named = _app_like_configuration()

    portal = _portal(stripe_customer.id)

    default = stripe.billing_portal.Configuration.retrieve(portal.configuration)
    assert default.is_default is True
    assert default.id != named.id
    assert _portal(stripe_customer.id, named.id).configuration == named.id


def test_an_immediate_cancel_with_prorations_shows_the_credit_it_gives(client, subscribed):
    config = stripe.billing_portal.Configuration.create(
        features={
            "subscription_cancel": {
                "enabled": True,
                "mode": "immediately",
                "proration_behavior": "create_prorations",
            }
        }
    )
    portal = _portal(subscribed.customer, config.id)

    page = client.get(f"/sandbox/portal/{portal.id}/").content.decode()
    client.post(
        f"/sandbox/portal/{portal.id}/", {"action": "cancel_now", "subscription": subscribed.id}
    )

    credits = [
        ii["amount"]
        for ii in store.all_of("invoiceitem")
        if ii["customer"] == subscribed.customer and ii["amount"] < 0
    ]
    assert stripe.Subscription.retrieve(subscribed.id).status == "canceled"
    assert len(credits) == 1
    # Prorated to the second: the page was shown a moment before the click.
    shown = re.search(r'<strong class="sandbox-cancel-credit">£(\d+)\.(\d\d)</strong>', page)
    assert shown
    assert abs(int(shown[1]) * 100 + int(shown[2]) + credits[0]) <= 1
