"""Billing's domain signals: `plan_changed` (below) and `customer_notice` (further down).

`plan_changed` is sent by `billing.entitlements.plan_refresh` inside the transaction that
wrote the `PlanChange`, once per change, never when nothing changed. Receivers must only
write to the database (an outbox row, a task), never call a provider: the transaction
may still roll back.

    sender:       PlanChange
    plan_change:  the PlanChange row just written
    notify:       what the writer asked: None (billing.messages decides what the
                  customer is told of the change, at most one message), True (staff:
                  tell the customer of the comp), False (staff or reconcile: silence)
"""

from __future__ import annotations

from enum import StrEnum

from django.dispatch import Signal

plan_changed = Signal()


class Notice(StrEnum):
    """What `customer_notice` tells the customer about (its `kind`)."""

    PAYMENT_FAILED = "payment_failed"
    PAYMENT_ACTION_REQUIRED = "payment_action_required"
    PAYMENT_RECOVERED = "payment_recovered"
    CANCELLATION_SCHEDULED = "cancellation_scheduled"
    REFUND = "refund"
    TRIAL_ENDING = "trial_ending"
    DUPLICATE_SUBSCRIPTION = "duplicate_subscription"
    BANK_DEBIT_FAILED = "bank_debit_failed"
    # A cancellation at period end undone (customer.subscription.updated).
    SUBSCRIPTION_RESUMED = "subscription_resumed"
    # An upgrade's payment declined: nothing changed, nothing retried after it lapses.
    UPGRADE_DECLINED = "upgrade_declined"
    # Decided from a PlanChange by billing.messages.plan_change_message, one per change.
    WELCOME = "welcome"
    PLAN_ENDED = "plan_ended"
    PLAN_UPGRADED = "plan_upgraded"
    PLAN_DOWNGRADED = "plan_downgraded"
    COMP_GRANTED = "comp_granted"
    COMP_ENDED = "comp_ended"
    PAID_AFTER_END_REFUNDED = "paid_after_end_refunded"


# Billing's second domain signal: something happened to the customer's money or plan that
# they must be told about. Sent by billing.notices from the Stripe event handlers,
# inside dj-stripe's transaction, after the synced state confirmed the event is still
# true (a late or reordered event sends nothing). Receivers: database writes only, as for
# plan_changed. A change of plan is told from plan_changed (billing.messages), not here.
#
#     sender:          Notice
#     user:            the customer (accounts.User)
#     kind:            a Notice value
#     key:             what makes the notice unique, e.g. "in_123:attempt:2" or an event
#                      id: a duplicate delivery sends the same key, so it is told once
#     stripe_event_id: the Stripe event that triggered it
#     context:         JSON-serialisable facts for the message (amounts in minor units
#                      with "currency", times as Unix seconds, Stripe's links)
customer_notice = Signal()
