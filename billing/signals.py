"""Billing's domain signals: `plan_changed` (below) and `customer_notice` (further down).

`plan_changed` is sent by `billing.entitlements.plan_refresh` inside the transaction that
wrote the `PlanChange`, once per change, never when nothing changed. Receivers must only
write to the database (an outbox row, a task), never call a provider: the transaction
may still roll back.

    sender:       PlanChange
    plan_change:  the PlanChange row just written
    notify:       True when the customer should be welcomed to the new plan (an upgrade
                  from checkout, a subscription or an invoice, or a staff grant with
                  "notify the customer" ticked)
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
    PAID_AFTER_END_REFUNDED = "paid_after_end_refunded"


# Billing's second domain signal: something happened to the customer's money or plan that
# they must be told about. Sent by billing.notices from the Stripe webhook receivers,
# inside dj-stripe's transaction, after the synced state confirmed the event is still
# true (a late or reordered event sends nothing). Receivers: database writes only, as for
# plan_changed. The plan ending is told from plan_changed (new plan starter), not here.
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
