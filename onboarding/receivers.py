"""Signal receivers, connected in OnboardingConfig.ready(): billing's plan_changed and
customer_notice, accounts' phone_code_requested, and anymail's tracking (delivery events
from the email provider's webhooks)."""

from __future__ import annotations

import logging
from typing import Any

from anymail.signals import AnymailTrackingEvent, EventType

from accounts.models import PhoneCode, User
from billing.messages import plan_change_message
from billing.models import PlanChange
from onboarding.models import OnboardingMessage
from onboarding.outbox import (
    customer_notice_enqueue,
    message_status_advance,
    phone_code_enqueue,
    plan_message_enqueue,
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


def plan_changed_receive(*, plan_change: PlanChange, notify: bool | None, **kwargs: Any) -> None:
    """Queue the one message billing decides for the change (billing.messages), if any.

    Runs inside billing's transaction: database writes only (see outbox)."""
    message = plan_change_message(plan_change=plan_change, notify=notify)
    if message is not None:
        plan_message_enqueue(
            plan_change=plan_change, kind=message.kind, key=message.key, context=message.context
        )


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


def phone_code_receive(*, user: User, phone_code: PhoneCode, **kwargs: Any) -> None:
    """Queue the SMS with the code that confirms a number (accounts/phone.py).

    Runs inside accounts' transaction: database writes only (see outbox)."""
    phone_code_enqueue(user=user, phone_code=phone_code)


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
