"""Billing's one domain signal.

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

from django.dispatch import Signal

plan_changed = Signal()
