"""Where the sandbox stopped being kinder than Stripe in collecting a renewal (issue 27,
"The sandbox, where it is kinder than Stripe"): the renewal invoice is a draft for an hour
before it is finalized and charged; failed renewals are retried by Smart Retries (Stripe's
default) or the fixed schedule; a renewal waiting for 3-D Secure is not retried."""

from __future__ import annotations

import os
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import stripe

from devtools.stripe_sandbox import collection, store
from tests.stripe_sandbox.helpers import checkout_create, event_types, pay
from tests.stripe_sandbox.test_lifecycle import (
    CARD_3DS_ALWAYS,
    CARD_RENEWAL_FAILS,
    DAY,
    _advance_to,
    _latest_invoice,
    _period_end,
    _subscribe,
)

HOUR = 3600
CARD_OK = "4242 4242 4242 4242"
ROOT = Path(__file__).resolve().parents[2]


def _events_since(count: int) -> list[tuple[str, int]]:
    """(type, created) of the events emitted after the first `count`, in order; without
    the test clock's `test_helpers.test_clock.ready`, which ends every advance. Read from
    the sandbox's store, as `event_types` counts them: the Events API, like Stripe's,
    lists only the last 30 days, and these tests advance the clock by months."""
    from devtools.stripe_sandbox import store
    from devtools.stripe_sandbox.models import Delivery

    ids = dict.fromkeys(Delivery.objects.order_by("id").values_list("event_id", flat=True))
    events = [store.find(event_id, "event") for event_id in ids]
    kept = [
        (e["type"], e["created"]) for e in events if e["type"] != "test_helpers.test_clock.ready"
    ]
    return kept[count:]


def _failed_attempts(invoice_id: str) -> list[int]:
    events = stripe.Event.list(type="invoice.payment_failed", limit=100).data
    return sorted(e.created for e in events if e.data.object.id == invoice_id)


# --- A renewal is charged an hour after its invoice is created --------------------------


def test_a_renewal_invoice_is_a_draft_for_an_hour_then_finalized_and_charged(
    client, prices, stripe_customer
):
    sub_id = _subscribe(client, prices, stripe_customer.id, CARD_OK)
    renewal = _period_end(sub_id)
    before = len(event_types())

    report = _advance_to(renewal + HOUR - 60)

    draft = _latest_invoice(sub_id)
    assert draft.status == "draft"
    assert draft.billing_reason == "subscription_cycle"
    assert draft.automatically_finalizes_at == renewal + HOUR
    assert draft.auto_advance
    assert draft.created == renewal
    assert draft.attempt_count == 0
    assert _events_since(before) == [
        ("customer.subscription.updated", renewal),
        ("invoice.created", renewal),
    ]
    assert report.renewed == 0
    before = len(event_types())

    report = _advance_to(renewal + HOUR)

    invoice = stripe.Invoice.retrieve(draft.id)
    assert invoice.status == "paid"
    assert invoice.automatically_finalizes_at is None
    assert invoice.status_transitions.finalized_at == renewal + HOUR
    assert invoice.status_transitions.paid_at == renewal + HOUR
    assert _events_since(before) == [
        ("invoice.finalized", renewal + HOUR),
        ("charge.succeeded", renewal + HOUR),
        ("payment_intent.succeeded", renewal + HOUR),
        ("invoice.paid", renewal + HOUR),
        ("invoice.payment_succeeded", renewal + HOUR),
    ]
    assert report.renewed == 1


def test_a_declined_renewal_fails_an_hour_after_the_invoice_and_counts_from_there(
    client, prices, stripe_customer
):
    sub_id = _subscribe(client, prices, stripe_customer.id, CARD_RENEWAL_FAILS)
    renewal = _period_end(sub_id)

    _advance_to(renewal + HOUR - 1)
    assert stripe.Subscription.retrieve(sub_id).status == "active"

    report = _advance_to(renewal + HOUR)

    invoice = _latest_invoice(sub_id)
    assert invoice.status == "open"
    assert invoice.attempt_count == 1
    # billing/dunning.py counts the grace from the first failed attempt: finalized_at.
    assert invoice.status_transitions.finalized_at == renewal + HOUR
    assert _failed_attempts(invoice.id) == [renewal + HOUR]
    assert stripe.Subscription.retrieve(sub_id).status == "past_due"
    assert report.failed == 1


def test_the_first_invoice_after_a_trial_is_charged_an_hour_after_the_trial_ends(
    client, prices, stripe_customer
):
    session = checkout_create(
        prices["flowkit_monthly"],
        stripe_customer.id,
        subscription_data={"trial_period_days": 14},
    )
    pay(client, session.id, CARD_OK)
    sub_id = stripe.checkout.Session.retrieve(session.id).subscription
    trial_end = stripe.Subscription.retrieve(sub_id).trial_end

    _advance_to(trial_end + HOUR - 1)

    sub = stripe.Subscription.retrieve(sub_id)
    assert sub.status == "active"  # the trial is over; its first invoice is a draft
    draft = _latest_invoice(sub_id)
    assert draft.status == "draft"
    assert draft.amount_due == 4900

    _advance_to(trial_end + HOUR)

    invoice = stripe.Invoice.retrieve(draft.id)
    assert invoice.status == "paid"
    assert invoice.status_transitions.paid_at == trial_end + HOUR


def test_the_renew_command_still_charges_at_once(client, prices, stripe_customer):
    from tests.stripe_sandbox.test_lifecycle import EMAIL, _run

    sub_id = _subscribe(client, prices, stripe_customer.id, CARD_OK)

    _run("renew", "--email", EMAIL)

    assert _latest_invoice(sub_id).status == "paid"


# --- Smart Retries ----------------------------------------------------------------------


def test_smart_retries_are_the_default_retry_policy():
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRIPE_SANDBOX_")}
    shown = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings as s; "
            "print(s.STRIPE_SANDBOX_RETRY_POLICY, s.STRIPE_SANDBOX_SMART_RETRIES, "
            "s.STRIPE_SANDBOX_SMART_RETRY_DAYS, s.STRIPE_SANDBOX_DUNNING_END)",
        ],
        cwd=ROOT,
        env={**env, "DEBUG": "true", "DJANGO_SETTINGS_MODULE": "smartflow.settings"},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert shown.stdout.splitlines()[-1].split() == ["smart", "8", "14", "cancel"], shown.stderr


def test_smart_retries_try_8_times_within_2_weeks_at_times_drawn_from_the_seed(
    client, prices, stripe_customer, settings
):
    settings.STRIPE_SANDBOX_RETRY_POLICY = "smart"
    settings.STRIPE_SANDBOX_SEED = 2727
    offsets = collection.smart_retry_offsets()
    sub_id = _subscribe(client, prices, stripe_customer.id, CARD_RENEWAL_FAILS)
    first = _period_end(sub_id) + HOUR
    _advance_to(first)
    invoice = _latest_invoice(sub_id)
    assert invoice.next_payment_attempt == first + offsets[0]

    _advance_to(first + 15 * DAY)

    attempts = _failed_attempts(invoice.id)
    assert attempts == [first] + [first + offset for offset in offsets]
    assert len(attempts) == 9
    assert attempts[-1] <= first + 14 * DAY
    assert all(b - a >= HOUR for a, b in pairwise(attempts))
    invoice = stripe.Invoice.retrieve(invoice.id)
    assert invoice.attempt_count == 9
    assert invoice.next_payment_attempt is None
    sub = stripe.Subscription.retrieve(sub_id)
    assert sub.status == "canceled"
    assert sub.ended_at == attempts[-1]
    assert sub.cancellation_details.reason == "payment_failed"


def test_the_smart_retry_schedule_is_a_function_of_the_seed(settings):
    settings.STRIPE_SANDBOX_SMART_RETRIES = 8
    settings.STRIPE_SANDBOX_SMART_RETRY_DAYS = 14

    same = collection.smart_retry_offsets(seed=5) == collection.smart_retry_offsets(seed=5)
    other = collection.smart_retry_offsets(seed=5) != collection.smart_retry_offsets(seed=6)

    assert same
    assert other
    offsets = collection.smart_retry_offsets(seed=5)
    assert offsets == sorted(offsets)
    assert offsets[0] >= HOUR
    assert offsets[-1] <= 14 * DAY


def test_smart_retries_follow_the_account_settings_then_mark_unpaid(
    client, prices, stripe_customer, settings
):
    settings.STRIPE_SANDBOX_RETRY_POLICY = "smart"
    settings.STRIPE_SANDBOX_SMART_RETRIES = 3
    settings.STRIPE_SANDBOX_SMART_RETRY_DAYS = 7
    settings.STRIPE_SANDBOX_DUNNING_END = "unpaid"
    sub_id = _subscribe(client, prices, stripe_customer.id, CARD_RENEWAL_FAILS)
    first = _period_end(sub_id) + HOUR

    _advance_to(first + 8 * DAY)

    invoice = _latest_invoice(sub_id)
    attempts = _failed_attempts(invoice.id)
    assert len(attempts) == 4
    assert attempts[-1] <= first + 7 * DAY
    assert stripe.Subscription.retrieve(sub_id).status == "unpaid"
    assert invoice.next_payment_attempt is None
    assert invoice.status == "open"


def test_the_fixed_schedule_is_still_offered(client, prices, stripe_customer, settings):
    settings.STRIPE_SANDBOX_RETRY_POLICY = "fixed"
    settings.STRIPE_SANDBOX_RETRY_DAYS = [2, 4]
    sub_id = _subscribe(client, prices, stripe_customer.id, CARD_RENEWAL_FAILS)
    first = _period_end(sub_id) + HOUR

    _advance_to(first + 7 * DAY)

    assert _failed_attempts(_latest_invoice(sub_id).id) == [first, first + 2 * DAY, first + 6 * DAY]
    assert stripe.Subscription.retrieve(sub_id).status == "canceled"


def test_retry_policy_settings_are_checked_at_start_up():
    from tests.smartflow.test_settings import _start

    bad_policy = _start(DEBUG="true", STRIPE_SANDBOX_RETRY_POLICY="often")
    bad_window = _start(DEBUG="true", STRIPE_SANDBOX_SMART_RETRY_DAYS="10")

    assert "STRIPE_SANDBOX_RETRY_POLICY must be smart or fixed" in bad_policy.stderr
    assert "STRIPE_SANDBOX_SMART_RETRY_DAYS must be 7, 14, 21, 30 or 60" in bad_window.stderr


# --- 3-D Secure at renewal is not retried -----------------------------------------------


def test_a_renewal_waiting_for_3ds_is_not_retried_and_waits_for_the_customer(
    client, prices, stripe_customer, settings
):
    settings.STRIPE_SANDBOX_RETRY_POLICY = "smart"
    sub_id = _subscribe(client, prices, stripe_customer.id, CARD_3DS_ALWAYS)
    first = _period_end(sub_id) + HOUR
    _advance_to(first)
    invoice = _latest_invoice(sub_id)
    assert invoice.attempt_count == 1
    assert invoice.next_payment_attempt is None
    types = [t for t, created in _events_since(0) if created == first]
    assert "invoice.payment_failed" in types
    assert "invoice.payment_action_required" in types

    # Within Smart Retries' window (14 days): waiting, not retried, still payable.
    report = _advance_to(first + 14 * DAY - 2 * HOUR)

    assert report.retried == 0
    assert _failed_attempts(invoice.id) == [first]
    assert stripe.Subscription.retrieve(sub_id).status == "past_due"
    client.post(f"/sandbox/invoice/{invoice.id}/", {"action": "authenticate_approve"})
    assert stripe.Invoice.retrieve(invoice.id).status == "paid"


def test_a_renewal_never_confirmed_ends_as_a_failed_one_when_the_window_closes(
    client, prices, stripe_customer, settings
):
    # Kinder than Stripe before: the subscription stayed past_due for good.
    settings.STRIPE_SANDBOX_RETRY_POLICY = "smart"
    settings.STRIPE_SANDBOX_DUNNING_END = "cancel"
    sub_id = _subscribe(client, prices, stripe_customer.id, CARD_3DS_ALWAYS)
    first = _period_end(sub_id) + HOUR
    _advance_to(first)

    report = _advance_to(first + 14 * DAY + HOUR)

    sub = stripe.Subscription.retrieve(sub_id)
    assert report.retried == 0
    assert report.canceled == 1
    assert sub.status == "canceled"
    assert sub.cancellation_details.reason == "payment_failed"
    assert sub.ended_at == first + 14 * DAY


def test_a_retry_that_meets_3ds_ends_the_schedule(client, prices, stripe_customer, settings):
    settings.STRIPE_SANDBOX_RETRY_POLICY = "fixed"
    settings.STRIPE_SANDBOX_RETRY_DAYS = [3, 5, 7]
    sub_id = _subscribe(client, prices, stripe_customer.id, CARD_RENEWAL_FAILS)
    first = _period_end(sub_id) + HOUR
    _advance_to(first)
    collection.customer_card_set(stripe_customer.id, collection.card_check(CARD_3DS_ALWAYS))

    # Before the schedule's window (3 + 5 + 7 days) closes: no retry, still waiting.
    _advance_to(first + 15 * DAY - 2 * HOUR)

    invoice = _latest_invoice(sub_id)
    assert invoice.attempt_count == 2
    assert invoice.next_payment_attempt is None
    assert stripe.Subscription.retrieve(sub_id).status == "past_due"
    assert store.find(invoice.id, "invoice")["status"] == "open"
