"""Background tasks of billing (django-tasks, run by `manage.py worker`).

Each task imports the service it runs inside its body (as the HackSoft Django
styleguide does): the services import this module at their top to enqueue, so this one
imports only models at its own.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from allauth.account.signals import email_changed
from django.dispatch import receiver
from django.utils import timezone
from django_tasks import task

from accounts.models import User
from billing.models import PlanChange, PlanOverride

logger = logging.getLogger(__name__)

# How far back a sweep looks for expired overrides. Each grant with an expiry enqueues
# a sweep for that moment, so this only has to cover a worker that was down for a while;
# the daily `reconcile_plans` covers everything else.
SWEEP_LOOKBACK = timedelta(days=7)


@task()
def overrides_sweep() -> int:
    """Move users whose override expired recently back to the plan they are entitled to.

    Safe to run any number of times (plan_refresh writes only on a change). Returns the
    number of users whose plan changed.
    """
    from billing.entitlements import plan_compute, plan_refresh

    now = timezone.now()
    user_ids = (
        PlanOverride.objects.filter(
            revoked_at__isnull=True, expires_at__lte=now, expires_at__gt=now - SWEEP_LOOKBACK
        )
        .values_list("user_id", flat=True)
        .distinct()
    )
    changed = 0
    for user in User.objects.filter(pk__in=list(user_ids)):
        why = plan_compute(user, now=now).why
        # notify left to billing.messages: the customer is told their comp has ended.
        if plan_refresh(
            user=user,
            source=PlanChange.Source.RECONCILE,
            reason=f"staff override expired; now: {why}",
        ):
            changed += 1
    logger.info("Override sweep: %s users changed plan", changed)
    return changed


@task()
def plan_grace_recheck(user_id: int) -> bool:
    """Decide `user_id`'s plan again when the grace of a failed renewal runs out
    (enqueued by plan_refresh for that moment), so the plan drops then even when no
    webhook arrives. Safe to run any number of times, early or late: plan_refresh decides
    from the facts and writes only on a change. Returns whether the plan changed."""
    from billing.entitlements import plan_compute, plan_refresh

    user = User.objects.filter(pk=user_id).first()
    if user is None:
        return False
    why = plan_compute(user).why
    # Source INVOICE: the unpaid renewal invoice ends the plan, as its own webhook would
    # have, so the customer is told "Your SmartFlow plan has ended" (onboarding/receivers.py).
    change = plan_refresh(
        user=user,
        source=PlanChange.Source.INVOICE,
        reason=f"failed-payment grace period ended; now: {why}",
    )
    return change is not None


@task()
def webhook_process(delivery_id: int) -> str:
    """Process one acknowledged Stripe webhook delivery (billing/webhook_queue.py). Safe
    to run again, also after a worker died in it: the delivery is marked processed in the
    transaction that processed it, and a processed one is left alone."""
    from billing.webhook_queue import delivery_process

    return delivery_process(delivery_id)


@task()
def webhook_recover_run(run_id: int) -> dict[str, Any]:
    """The daily recovery of Stripe events never received (billing/webhook_recover.py),
    recorded on WebhookRecoverRun `run_id`. Safe to run again: an event id is stored once,
    so a second run queues only what is still missing."""
    from billing.webhook_recover import recover_run

    return recover_run(run_id)


@task()
def stripe_customer_email_sync(user_id: int) -> int:
    """Give the user's Stripe customers (this mode's) the user's email, after a confirmed
    change of address (accounts/receivers.py): receipts and Stripe's own emails go to the
    new address. Safe to run any number of times; a Stripe error fails the task, which
    the admin's Background work shows. Returns the number of customers updated."""
    from billing.stripe_api import customer_email_update

    user = User.objects.filter(pk=user_id).first()
    if user is None:
        return 0
    return customer_email_update(user=user)


@receiver(email_changed)
def on_email_changed(sender: Any, user: User, **kwargs: Any) -> None:
    """allauth's confirmed change of address (connected in BillingConfig.ready): the
    Stripe customer follows, by the worker."""
    stripe_customer_email_sync.enqueue(user.pk)
