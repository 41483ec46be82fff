"""The sandbox after the first payment, on its clock, through stripe-python: dunning,
card updates and the hosted invoice page, 3-D Secure, cancellation at period end,
incomplete subscriptions (issue 12, behaviours 1, 2, 3, 5 and 6)."""

from __future__ import annotations

import itertools
import time
from io import StringIO
from types import SimpleNamespace
from typing import Any

import pytest
import stripe
from django.core.management import call_command
from djstripe.models import Customer, WebhookEventTrigger

from devtools.stripe_sandbox import collection, store
from devtools.stripe_sandbox.delivery import deliver_pending
from devtools.stripe_sandbox.models import Delivery
from tests.sandbox_app import app_transport
from tests.stripe_sandbox.helpers import checkout_create, event_types, pay

EMAIL = "customer@example.com"
DAY = 86400
CARD_RENEWAL_FAILS = "4000 0000 0000 0341"
CARD_3DS_ALWAYS = "4000 0027 6000 3184"
CARD_3DS_ONCE = "4000 0025 0000 3155"


def _run(*args: str) -> str:
    out = StringIO()
    call_command("stripe_sandbox", *args, stdout=out)
    return out.getvalue().strip()


def _subscribe(client: Any, prices: Any, customer_id: str, card: str) -> str:
    session = checkout_create(prices["flowkit_monthly"], customer_id)
    response = pay(client, session.id, card)
    if "Authenticate this payment" in response.content.decode():
        client.post(
            f"/sandbox/checkout/{session.id}/", {"card_number": card, "authenticate": "approve"}
        )
    sub_id = stripe.checkout.Session.retrieve(session.id).subscription
    assert sub_id, "the checkout did not create a subscription"
    return sub_id


def _period_end(sub_id: str) -> int:
    return stripe.Subscription.retrieve(sub_id)["items"].data[0].current_period_end


def _charged_at(sub_id: str) -> int:
    """When the renewal at the period end is charged: an hour after its invoice is created,
    as Stripe finalizes a subscription's draft invoice."""
    return _period_end(sub_id) + collection.FINALIZE_SECONDS


def _advance_to(ts: int) -> collection.ClockReport:
    return collection.clock_advance(ts - store.now())


def _latest_invoice(sub_id: str) -> Any:
    return stripe.Subscription.retrieve(sub_id, expand=["latest_invoice"]).latest_invoice


def _last_event(type: str) -> Any:
    return stripe.Event.list(type=type, limit=1).data[0]


# --- 1. Dunning -------------------------------------------------------------------------


def test_a_failed_renewal_is_retried_3_5_7_days_later_then_canceled(
    client, prices, stripe_customer
):
    sub_id = _subscribe(client, prices, stripe_customer.id, CARD_RENEWAL_FAILS)
    renewal = _charged_at(sub_id)

    _advance_to(renewal)

    invoice = _latest_invoice(sub_id)
    assert stripe.Subscription.retrieve(sub_id).status == "past_due"
    assert invoice.status == "open"
    assert invoice.attempt_count == 1
    assert invoice.next_payment_attempt == renewal + 3 * DAY
    attempts = [(renewal, 1)]
    when = renewal
    for days, count in ((3, 2), (5, 3), (7, 4)):
        when += days * DAY
        before = event_types()
        report = _advance_to(when)
        failed = _last_event("invoice.payment_failed")
        assert failed.data.object.attempt_count == count
        assert failed.created == when  # the event carries the clock's time of the retry
        assert report.retried == 1
        attempts.append((when, count))
        if count < 4:
            assert stripe.Subscription.retrieve(sub_id).status == "past_due"
            assert "customer.subscription.deleted" not in event_types()[len(before) :]
    invoice = stripe.Invoice.retrieve(invoice.id)
    assert invoice.attempt_count == 4
    assert invoice.next_payment_attempt is None
    assert invoice.status == "open"
    sub = stripe.Subscription.retrieve(sub_id)
    assert sub.status == "canceled"
    assert sub.ended_at == renewal + 15 * DAY
    assert sub.cancellation_details.reason == "payment_failed"
    # Stripe stops collecting the open invoice as it cancels (invoice.updated).
    assert [t for t in event_types() if t != "invoice.updated"][-1] == (
        "customer.subscription.deleted"
    )
    assert len(attempts) == 4


def test_nothing_is_retried_before_its_time(client, prices, stripe_customer):
    sub_id = _subscribe(client, prices, stripe_customer.id, CARD_RENEWAL_FAILS)
    renewal = _charged_at(sub_id)
    _advance_to(renewal)

    report = _advance_to(renewal + 3 * DAY - 60)

    assert report.retried == 0
    assert _latest_invoice(sub_id).attempt_count == 1


def test_dunning_can_end_unpaid(client, prices, stripe_customer, settings):
    settings.STRIPE_SANDBOX_RETRY_DAYS = [1]
    settings.STRIPE_SANDBOX_DUNNING_END = "unpaid"
    sub_id = _subscribe(client, prices, stripe_customer.id, CARD_RENEWAL_FAILS)
    renewal = _charged_at(sub_id)
    _advance_to(renewal)

    _advance_to(renewal + DAY)

    assert stripe.Subscription.retrieve(sub_id).status == "unpaid"
    assert event_types()[-2:] == ["invoice.payment_failed", "customer.subscription.updated"]
    updated = _last_event("customer.subscription.updated")
    assert updated.data.previous_attributes["status"] == "past_due"
    assert _latest_invoice(sub_id).next_payment_attempt is None


def test_dunning_can_leave_it_past_due(client, prices, stripe_customer, settings):
    settings.STRIPE_SANDBOX_RETRY_DAYS = [2]
    settings.STRIPE_SANDBOX_DUNNING_END = "past_due"
    sub_id = _subscribe(client, prices, stripe_customer.id, CARD_RENEWAL_FAILS)
    renewal = _charged_at(sub_id)
    _advance_to(renewal)

    _advance_to(renewal + 2 * DAY)

    assert stripe.Subscription.retrieve(sub_id).status == "past_due"
    assert event_types()[-1] == "invoice.payment_failed"
    assert _latest_invoice(sub_id).next_payment_attempt is None


def test_the_retry_after_a_card_update_in_the_portal_pays_the_invoice(
    client, prices, stripe_customer
):
    sub_id = _subscribe(client, prices, stripe_customer.id, CARD_RENEWAL_FAILS)
    renewal = _charged_at(sub_id)
    _advance_to(renewal)
    portal = stripe.billing_portal.Session.create(
        customer=stripe_customer.id, return_url="http://testserver/"
    )

    page = client.post(
        f"/sandbox/portal/{portal.id}/",
        {"action": "update_card", "card_number": "4242 4242 4242 4242"},
        follow=True,
    ).content.decode()

    customer = stripe.Customer.retrieve(stripe_customer.id)
    pm = stripe.PaymentMethod.retrieve(customer.invoice_settings.default_payment_method)
    assert pm.card.last4 == "4242"
    assert pm.customer == stripe_customer.id
    assert "Visa ending 4242" in page
    assert _latest_invoice(sub_id).status == "open"  # used by the next retry, not now

    report = _advance_to(renewal + 3 * DAY)

    assert report.recovered == 1
    invoice = _latest_invoice(sub_id)
    assert invoice.status == "paid"
    assert invoice.attempt_count == 2
    assert stripe.Subscription.retrieve(sub_id).status == "active"
    assert "invoice.paid" in event_types()[-5:]


def test_a_declined_card_is_not_saved_in_the_portal(client, subscribed):
    portal = stripe.billing_portal.Session.create(customer=subscribed.customer)

    page = client.post(
        f"/sandbox/portal/{portal.id}/",
        {"action": "update_card", "card_number": "4000 0000 0000 0002"},
        follow=True,
    ).content.decode()

    assert "Your card was declined" in page
    customer = stripe.Customer.retrieve(subscribed.customer)
    assert customer.invoice_settings.default_payment_method is None


def test_djstripe_processes_dunning_and_card_update_events(client, customer, prices):
    djstripe_customer, _ = Customer.get_or_create(subscriber=customer)
    sub_id = _subscribe(client, prices, djstripe_customer.id, CARD_RENEWAL_FAILS)
    _advance_to(_charged_at(sub_id))
    collection.customer_card_set(djstripe_customer.id, "4242424242424242")
    _advance_to(store.now() + 3 * DAY)

    report = deliver_pending(transport=app_transport(client))

    assert report.failed == 0, list(Delivery.objects.values_list("event_id", "last_error"))
    failed = [t for t in WebhookEventTrigger.objects.all() if not t.processed or t.exception]
    assert failed == []
    assert stripe.Subscription.retrieve(sub_id).status == "active"


# --- 2. Hosted invoice page, pay an open invoice -----------------------------------------


def test_every_finalized_invoice_has_a_hosted_page_and_a_printable_version(client, subscribed):
    invoice = _latest_invoice(subscribed.id)

    assert invoice.hosted_invoice_url == f"http://testserver/sandbox/invoice/{invoice.id}/"
    assert invoice.invoice_pdf == f"http://testserver/sandbox/invoice/{invoice.id}/pdf/"
    page = client.get(f"/sandbox/invoice/{invoice.id}/").content.decode()
    assert invoice.number in page
    assert "£49.00" in page
    assert "paid" in page
    assert "Pay with" not in page  # paid: nothing to pay
    printable = client.get(f"/sandbox/invoice/{invoice.id}/pdf/").content.decode()
    assert "@media print" in printable
    assert invoice.number in printable
    assert client.get("/sandbox/invoice/in_nope/").status_code == 404


def test_an_open_invoice_is_paid_on_its_page_with_a_new_card(client, prices, stripe_customer):
    sub_id = _subscribe(client, prices, stripe_customer.id, CARD_RENEWAL_FAILS)
    _advance_to(_charged_at(sub_id))
    invoice = _latest_invoice(sub_id)
    page = client.get(f"/sandbox/invoice/{invoice.id}/").content.decode()
    assert "Pay with Visa ending 0341" in page
    assert "Pay with this card" in page

    declined = client.post(
        f"/sandbox/invoice/{invoice.id}/", {"action": "pay_default"}, follow=True
    ).content.decode()
    assert "Your card was declined" in declined
    assert stripe.Invoice.retrieve(invoice.id).next_payment_attempt == (
        invoice.next_payment_attempt
    )

    paid = client.post(
        f"/sandbox/invoice/{invoice.id}/",
        {"action": "pay_card", "card_number": "4242 4242 4242 4242"},
        follow=True,
    ).content.decode()

    assert "Payment received" in paid
    assert stripe.Invoice.retrieve(invoice.id).status == "paid"
    assert stripe.Subscription.retrieve(sub_id).status == "active"
    assert event_types()[-3:] == [
        "invoice.paid",
        "invoice.payment_succeeded",
        "customer.subscription.updated",
    ]


def test_pay_invoice_command_pays_with_the_default_card(client, prices, stripe_customer):
    sub_id = _subscribe(client, prices, stripe_customer.id, CARD_RENEWAL_FAILS)
    _advance_to(_charged_at(sub_id))

    declined = _run("pay-invoice", "--email", EMAIL)
    collection.customer_card_set(stripe_customer.id, "4242424242424242")
    paid = _run("pay-invoice", "--email", EMAIL)
    again = _run("pay-invoice", "--email", EMAIL)

    assert "was declined" in declined
    assert "\n" not in declined
    assert paid.startswith("Paid invoice")
    assert "£49.00" in paid
    assert "nothing to pay" in again
    assert stripe.Subscription.retrieve(sub_id).status == "active"


def test_invoice_pay_through_the_api(client, prices, stripe_customer):
    sub_id = _subscribe(client, prices, stripe_customer.id, CARD_RENEWAL_FAILS)
    _advance_to(_charged_at(sub_id))
    invoice = _latest_invoice(sub_id)

    with pytest.raises(stripe.CardError):
        stripe.Invoice.pay(invoice.id)
    paid = stripe.Invoice.pay(invoice.id, payment_method="pm_card_visa")

    assert paid.status == "paid"
    assert stripe.Subscription.retrieve(sub_id).status == "active"


# --- 3. 3-D Secure ----------------------------------------------------------------------


def test_checkout_with_a_3ds_card_asks_for_authentication_first(client, prices, stripe_customer):
    session = checkout_create(prices["flowkit_monthly"], stripe_customer.id)

    step = pay(client, session.id, CARD_3DS_ALWAYS)

    assert "Authenticate this payment" in step.content.decode()
    assert stripe.checkout.Session.retrieve(session.id).status == "open"
    assert store.all_of("subscription") == []
    failed = client.post(
        f"/sandbox/checkout/{session.id}/",
        {"card_number": CARD_3DS_ALWAYS, "authenticate": "fail"},
    )
    assert failed.status_code == 400
    assert "unable to authenticate" in failed.content.decode()
    assert store.all_of("subscription") == []

    approved = client.post(
        f"/sandbox/checkout/{session.id}/",
        {"card_number": CARD_3DS_ALWAYS, "authenticate": "approve"},
    )

    assert approved.status_code == 302
    assert stripe.checkout.Session.retrieve(session.id).status == "complete"


def test_a_3ds_renewal_waits_for_the_customer_on_the_hosted_invoice_page(
    client, prices, stripe_customer
):
    sub_id = _subscribe(client, prices, stripe_customer.id, CARD_3DS_ALWAYS)
    before = event_types()

    _advance_to(_charged_at(sub_id))

    invoice = _latest_invoice(sub_id)
    assert stripe.Subscription.retrieve(sub_id).status == "past_due"
    assert invoice.status == "open"
    new = event_types()[len(before) :]
    # Stripe sends both for an off-session payment waiting for 3-D Secure.
    assert "invoice.payment_action_required" in new
    assert "invoice.payment_failed" in new
    pi = stripe.PaymentIntent.list(customer=stripe_customer.id).data[0]
    assert pi.status == "requires_action"
    assert pi.next_action.type == "use_stripe_sdk"
    page = client.get(invoice.hosted_invoice_url.replace("http://testserver", ""))
    assert "Authenticate this payment" in page.content.decode()

    client.post(f"/sandbox/invoice/{invoice.id}/", {"action": "authenticate_approve"})

    assert stripe.Invoice.retrieve(invoice.id).status == "paid"
    assert stripe.Subscription.retrieve(sub_id).status == "active"
    pi = stripe.PaymentIntent.retrieve(pi.id, expand=["latest_charge"])
    assert pi.status == "succeeded"
    assert pi.latest_charge.payment_method_details.card.three_d_secure.result == "authenticated"


def test_failing_authentication_on_the_invoice_page_leaves_it_open(client, prices, stripe_customer):
    sub_id = _subscribe(client, prices, stripe_customer.id, CARD_3DS_ALWAYS)
    _advance_to(_charged_at(sub_id))
    invoice = _latest_invoice(sub_id)

    client.post(f"/sandbox/invoice/{invoice.id}/", {"action": "authenticate_fail"})

    assert stripe.Invoice.retrieve(invoice.id).status == "open"
    assert event_types()[-1] == "payment_intent.payment_failed"
    assert stripe.Subscription.retrieve(sub_id).status == "past_due"


def test_card_3155_authenticates_once_then_renewals_pay(client, prices, stripe_customer):
    session = checkout_create(prices["flowkit_monthly"], stripe_customer.id)
    assert "Authenticate this payment" in pay(client, session.id, CARD_3DS_ONCE).content.decode()
    sub_id = _subscribe(client, prices, stripe_customer.id, CARD_3DS_ONCE)

    report = _advance_to(_charged_at(sub_id))

    assert report.renewed >= 1
    assert report.failed == 0
    assert _latest_invoice(sub_id).status == "paid"
    assert stripe.Subscription.retrieve(sub_id).status == "active"


# --- 5. Cancellation at period end ------------------------------------------------------


def test_cancel_at_period_end_can_be_undone_then_ends_at_the_period_end(subscribed):
    end = _period_end(subscribed.id)
    stripe.Subscription.modify(subscribed.id, cancel_at_period_end=True)
    undone = stripe.Subscription.modify(subscribed.id, cancel_at_period_end=False)
    assert undone.cancel_at_period_end is False
    assert undone.cancel_at is None
    again = stripe.Subscription.modify(subscribed.id, cancel_at_period_end=True)
    assert again.cancel_at == end

    _advance_to(end - 60)
    assert stripe.Subscription.retrieve(subscribed.id).status == "active"
    report = _advance_to(end + DAY)

    sub = stripe.Subscription.retrieve(subscribed.id)
    assert report.canceled == 1
    assert sub.status == "canceled"
    assert sub.ended_at == end
    deleted = _last_event("customer.subscription.deleted")
    assert deleted.created == end
    assert deleted.data.object.id == subscribed.id
    with pytest.raises(stripe.InvalidRequestError):
        stripe.Subscription.modify(subscribed.id, cancel_at_period_end=False)


def test_an_undone_cancellation_renews_at_the_period_end(subscribed):
    end = _period_end(subscribed.id)
    stripe.Subscription.modify(subscribed.id, cancel_at_period_end=True)
    stripe.Subscription.modify(subscribed.id, cancel_at_period_end=False)

    report = _advance_to(end + collection.FINALIZE_SECONDS)

    assert report.renewed == 1
    sub = stripe.Subscription.retrieve(subscribed.id)
    assert sub.status == "active"
    assert sub["items"].data[0].current_period_start == end


# --- Deleting a customer ----------------------------------------------------------------


def test_deleting_a_customer_cancels_its_subscriptions_then_the_clock_runs_on(
    client, prices, stripe_customer
):
    paying = _subscribe(client, prices, stripe_customer.id, "4242 4242 4242 4242")
    failing = _subscribe(client, prices, stripe_customer.id, CARD_RENEWAL_FAILS)
    _advance_to(_charged_at(failing))  # one renews, the other fails: past_due, retried later
    assert stripe.Subscription.retrieve(failing).status == "past_due"
    before = event_types()
    deleted_from = store.now()

    stripe.Customer.delete(stripe_customer.id)

    # As Stripe: each subscription ends now (customer.subscription.deleted), then the customer.
    new = event_types()[len(before) :]
    assert [t for t in new if t != "invoice.updated"] == ["customer.subscription.deleted"] * 2 + [
        "customer.deleted"
    ]
    # The failed renewal's invoice: its automatic collection stops (invoice.updated).
    assert new.count("invoice.updated") == 1
    for sub_id in (paying, failing):
        sub = stripe.Subscription.retrieve(sub_id)
        # Ended at the deletion: the sandbox clock runs on in real time meanwhile.
        assert sub.status == "canceled"
        assert deleted_from <= sub.ended_at <= store.now()
    # The failed renewal's retries and the next renewals no longer fall due.
    report = collection.clock_advance(40 * DAY)
    assert (report.renewed, report.failed, report.recovered) == (0, 0, 0)
    assert stripe.Invoice.retrieve(_latest_invoice(failing).id).next_payment_attempt is None


def test_each_step_of_an_advance_happens_at_its_due_time_however_slow_the_machine(
    client, prices, stripe_customer, monkeypatch
):
    first = _subscribe(client, prices, stripe_customer.id, "4242 4242 4242 4242")
    second = _subscribe(client, prices, stripe_customer.id, "4242 4242 4242 4242")
    charged_at = _charged_at(second)
    assert charged_at - _charged_at(first) < 10  # subscribed seconds apart
    # A slow machine: each reading of the real clock 10 s after the one before, so the
    # first renewal's own work outlasts the gap between the two.
    real = itertools.count(int(time.time()), 10)
    monkeypatch.setattr(store, "time", SimpleNamespace(time=lambda: next(real)))

    report = _advance_to(charged_at)

    # Both renewals charged: the second's invoice was made at its period's end, not
    # after the first's steps, and so fell due within the walk (as on Stripe's test
    # clock, frozen while it advances).
    assert report.renewed == 2
    for sub_id in (first, second):
        assert _latest_invoice(sub_id).status == "paid"


# --- 6. Incomplete subscriptions --------------------------------------------------------


def _create(customer_id: str, price: Any, pm: str | None, **extra: Any) -> Any:
    params: dict[str, Any] = {"customer": customer_id, "items": [{"price": price.id}], **extra}
    if pm:
        params["default_payment_method"] = pm
    return stripe.Subscription.create(**params)


def test_a_declined_first_payment_is_incomplete_then_expires_23_hours_later(
    prices, stripe_customer
):
    sub = _create(stripe_customer.id, prices["flowkit_monthly"], "pm_card_chargeDeclined")
    created = sub.created

    assert sub.status == "incomplete"
    invoice = _latest_invoice(sub.id)
    assert invoice.status == "open"
    assert invoice.attempt_count == 1
    assert invoice.next_payment_attempt is None
    _advance_to(created + 22 * 3600)
    assert stripe.Subscription.retrieve(sub.id).status == "incomplete"

    summary = _run("advance", "--hours", "2")

    sub = stripe.Subscription.retrieve(sub.id)
    assert sub.status == "incomplete_expired"
    assert sub.ended_at == created + 23 * 3600
    assert stripe.Invoice.retrieve(invoice.id).status == "void"
    assert event_types()[-2:] == ["invoice.voided", "customer.subscription.deleted"]
    assert "1 expired" in summary
    assert "2 hour(s)" in summary
    assert "\n" not in summary
    assert stripe.Subscription.list(customer=stripe_customer.id).data == []


def test_a_first_payment_needing_authentication_is_incomplete_until_approved(
    client, prices, stripe_customer
):
    sub = _create(stripe_customer.id, prices["flowkit_monthly"], "pm_card_authenticationRequired")

    assert sub.status == "incomplete"
    assert "invoice.payment_action_required" in event_types()
    invoice = _latest_invoice(sub.id)
    client.post(f"/sandbox/invoice/{invoice.id}/", {"action": "authenticate_approve"})

    assert stripe.Subscription.retrieve(sub.id).status == "active"
    collection.clock_advance(DAY)
    assert stripe.Subscription.retrieve(sub.id).status == "active"  # paid: never expires


def test_default_incomplete_waits_for_the_first_invoice_to_be_paid(prices, stripe_customer):
    sub = _create(
        stripe_customer.id,
        prices["flowkit_monthly"],
        None,
        payment_behavior="default_incomplete",
    )

    invoice = _latest_invoice(sub.id)
    assert sub.status == "incomplete"
    assert invoice.attempt_count == 0
    stripe.Invoice.pay(invoice.id, payment_method="pm_card_visa")

    assert stripe.Subscription.retrieve(sub.id).status == "active"


def test_error_if_incomplete_answers_402_and_keeps_nothing(prices, stripe_customer):
    with pytest.raises(stripe.CardError) as exc:
        _create(
            stripe_customer.id,
            prices["flowkit_monthly"],
            "pm_card_chargeDeclined",
            payment_behavior="error_if_incomplete",
        )

    assert exc.value.http_status == 402
    assert exc.value.code == "card_declined"
    assert store.all_of("subscription") == []
    assert store.all_of("invoice") == []


def test_a_good_card_makes_an_active_subscription(prices, stripe_customer):
    sub = _create(stripe_customer.id, prices["flowkit_monthly"], "pm_card_visa")

    assert sub.status == "active"
    assert _latest_invoice(sub.id).status == "paid"


def test_subscription_create_refuses_a_customer_without_a_card(prices, stripe_customer):
    with pytest.raises(stripe.InvalidRequestError):
        _create(stripe_customer.id, prices["flowkit_monthly"], None)


# --- Commands ---------------------------------------------------------------------------


def test_advance_takes_hours_and_refuses_nothing_to_do(subscribed):
    start = store.now()

    summary = _run("advance", "--hours", "5")

    assert 5 * 3600 <= store.now() - start < 5 * 3600 + 60
    assert summary.startswith("Sandbox clock moved 5 hour(s)")
    assert "0 retried" in summary
    with pytest.raises(Exception, match="--days"):
        _run("advance")


def test_a_canceled_subscription_s_open_invoice_is_not_retried(client, prices, stripe_customer):
    sub_id = _subscribe(client, prices, stripe_customer.id, CARD_RENEWAL_FAILS)
    renewal = _charged_at(sub_id)
    _advance_to(renewal)
    invoice = _latest_invoice(sub_id)
    stripe.Subscription.delete(sub_id)

    report = _advance_to(renewal + 3 * DAY)

    assert report.recovered == 0
    invoice = stripe.Invoice.retrieve(invoice.id)
    assert invoice.attempt_count == 1
    assert invoice.next_payment_attempt is None
    assert event_types()[-1] == "invoice.updated"


def test_dunning_settings_are_checked_at_start_up():
    from tests.smartflow.test_settings import _start

    bad_days = _start(DEBUG="true", STRIPE_SANDBOX_RETRY_DAYS="3,soon")
    bad_end = _start(DEBUG="true", STRIPE_SANDBOX_DUNNING_END="forgive")

    assert "STRIPE_SANDBOX_RETRY_DAYS must be comma-separated whole days" in bad_days.stderr
    assert "STRIPE_SANDBOX_DUNNING_END must be cancel, unpaid or past_due" in bad_end.stderr


def test_the_checkout_page_lists_the_3ds_cards(client, prices, stripe_customer):
    session = checkout_create(prices["flowkit_monthly"], stripe_customer.id)

    page = client.get(f"/sandbox/checkout/{session.id}/").content.decode()

    assert "4000 0027 6000 3184" in page
    assert "3-D Secure on every payment" in page
    assert "4000 0025 0000 3155" in page
