"""What a webhook test asserts before it looks at the effect: the endpoint took the
event and a worker processed it. Without this, a test of "nothing changes" (a partial
refund, a failed renewal inside its grace) also passes when the event was refused or
its processing failed, since that changes nothing either."""

from __future__ import annotations

from typing import Any

from billing.models import WebhookDelivery


def assert_processed(response: Any, event: dict[str, Any]) -> None:
    assert response.status_code == 200, response.content
    delivery = WebhookDelivery.objects.get(event_id=event["id"])
    assert delivery.state == WebhookDelivery.State.PROCESSED, delivery.last_error
    assert delivery.processed_at is not None
