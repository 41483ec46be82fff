"""Signal receivers, connected in OnboardingConfig.ready(): billing's plan_changed and
customer_notice, and anymail's tracking (delivery events from the email provider's webhooks)."""

from __future__ import annotations

import logging
from typing import Any

from anymail.signals import AnymailTrackingEvent, EventType

from accounts.models import User
from billing.models import PlanChange
from billing.notices import plan_end_reason
from billing.plans import Plan
from onboarding.models import OnboardingMessage
from onboarding.outbox import (
    customer_notice_enqueue,
    message_status_advance,
    onboarding_welcome_enqueue,
    plan_ended_enqueue,
)

logger = logging.getLogger(__name__)

Status = OnboardingMessage.Status

_TRACKED: dict[str, str] = {
    EventType.DELIVERED: Status.DELIVERED,
    EventType.BOUNCED: Status.BOUNCED,
    EventType.COMPLAINED: Status.COMPLAINED,
    EventType.REJECTED: Status.FAILED,
    EventType.FAILED: Status.FAILED,
}


# A paid plan that drops to Starter for these reasons has ended for the customer; a
# staff revoke is explained by staff, and a refund by its own message. Checkout counts:
# a late checkout.session.completed can be the event that recomputes the plan after the
# subscription ended (its grace ran out, or Stripe gave up).
_ENDING_SOURCES = {
    PlanChange.Source.CHECKOUT,
    PlanChange.Source.SUBSCRIPTION,
    PlanChange.Source.INVOICE,
}


def plan_changed_receive(*, plan_change: PlanChange, notify: bool, **kwargs: Any) -> None:
    """Queue the welcome for an activation billing asks us to announce, and "your plan
    has ended" when a subscription's end takes a paid plan back to Starter.

    Runs inside billing's transaction: database writes only (see outbox)."""
    if notify:
        onboarding_welcome_enqueue(user=plan_change.user, plan_change=plan_change)
    elif (
        plan_change.new_plan == Plan.STARTER
        and plan_change.old_plan != Plan.STARTER
        and plan_change.source in _ENDING_SOURCES
    ):
        plan_ended_enqueue(plan_change=plan_change, reason=plan_end_reason(plan_change.user))


def customer_notice_receive(
    *,
    user: User,
    kind: str,
    key: str,
    stripe_event_id: str,
    context: dict[str, Any],
    **kwargs: Any,
) -> None:
    """Queue what billing tells the customer (billing.signals.customer_notice).

    Runs inside billing's transaction: database writes only (see outbox)."""
    customer_notice_enqueue(
        user=user, kind=kind, key=key, stripe_event_id=stripe_event_id, context=context
    )


def email_tracking_receive(*, event: AnymailTrackingEvent, esp_name: str, **kwargs: Any) -> None:
    """Record delivered / bounced / complained from the ESP's tracking webhook."""
    status = _TRACKED.get(event.event_type)
    if status is None:
        return
    metadata_id = str((event.metadata or {}).get("onboarding_message", ""))
    error = "" if status == Status.DELIVERED else (event.description or event.mta_response or "")
    changed = message_status_advance(
        channel=OnboardingMessage.Channel.EMAIL,
        provider_message_id=str(event.message_id or ""),
        message_id=int(metadata_id) if metadata_id.isdigit() else None,
        status=status,
        error=f"{event.event_type}: {error}" if error else "",
    )
    logger.info(
        "%s tracking: %s for message %s (%s)",
        esp_name,
        event.event_type,
        event.message_id,
        "recorded" if changed else "no change",
    )
