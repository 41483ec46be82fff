"""Signal receivers, connected in OnboardingConfig.ready(): billing's plan_changed and
anymail's tracking (delivery events from the email provider's webhooks)."""

from __future__ import annotations

import logging
from typing import Any

from anymail.signals import AnymailTrackingEvent, EventType

from billing.models import PlanChange
from onboarding.models import OnboardingMessage
from onboarding.outbox import message_status_advance, onboarding_welcome_enqueue

logger = logging.getLogger(__name__)

Status = OnboardingMessage.Status

_TRACKED: dict[str, str] = {
    EventType.DELIVERED: Status.DELIVERED,
    EventType.BOUNCED: Status.BOUNCED,
    EventType.COMPLAINED: Status.COMPLAINED,
    EventType.REJECTED: Status.FAILED,
    EventType.FAILED: Status.FAILED,
}


def plan_changed_receive(*, plan_change: PlanChange, notify: bool, **kwargs: Any) -> None:
    """Queue the welcome for an activation billing asks us to announce.

    Runs inside billing's transaction: database writes only (see outbox)."""
    if notify:
        onboarding_welcome_enqueue(user=plan_change.user, plan_change=plan_change)


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
