"""Events: stored like Stripe stores them, and queued for every local webhook endpoint."""

from __future__ import annotations

import contextvars
import logging
import secrets
import uuid

from django.conf import settings
from django.urls import reverse
from djstripe.models import WebhookEndpoint

from devtools.stripe_sandbox import delivery, objects, store
from devtools.stripe_sandbox.store import Obj

logger = logging.getLogger(__name__)

# The API request that caused the events being emitted (Stripe's event.request), if any.
current_request: contextvars.ContextVar[tuple[str | None, str | None]] = contextvars.ContextVar(
    "sandbox_request", default=(None, None)
)


def endpoint_ensure() -> WebhookEndpoint:
    """The local webhook endpoint the sandbox delivers to, created on first use.

    Like `stripe listen`, the sandbox brings its own endpoint: a dj-stripe row with a
    fresh secret, made without any call to Stripe. An enabled test-mode endpoint that
    already exists (one the developer made) is used as it is.
    """
    endpoint = (
        WebhookEndpoint.objects.filter(livemode=False, status="enabled")
        .order_by("djstripe_id")
        .first()
    )
    if endpoint is not None:
        return endpoint
    endpoint_uuid = uuid.uuid4()
    path = reverse("djstripe:djstripe_webhook_by_uuid", kwargs={"uuid": endpoint_uuid})
    data = store.save(
        {
            "id": store.new_id("we"),
            "object": "webhook_endpoint",
            "api_version": settings.STRIPE_API_VERSION,
            "application": None,
            "created": store.now(),
            "description": "Stripe sandbox (local)",
            "enabled_events": ["*"],
            "livemode": False,
            "metadata": {},
            "status": "enabled",
            "url": f"{settings.SITE_URL}{path}",
        }
    )
    endpoint = WebhookEndpoint.objects.create(
        id=data["id"],
        livemode=False,
        secret=f"whsec_{secrets.token_urlsafe(32)}",
        url=data["url"],
        enabled_events=["*"],
        status="enabled",
        api_version=settings.STRIPE_API_VERSION,
        djstripe_uuid=endpoint_uuid,
        stripe_data=data,
    )
    logger.info("Stripe sandbox: created local webhook endpoint %s (%s)", endpoint.id, endpoint.url)
    return endpoint


def _wants(endpoint: WebhookEndpoint, event_type: str) -> bool:
    enabled = endpoint.enabled_events or []
    return "*" in enabled or event_type in enabled


def event_emit(type: str, obj: Obj, *, previous: Obj | None = None) -> Obj:
    """Store the event `type` about `obj` (a snapshot) and queue its deliveries.

    Call inside the transaction that changed `obj`: the delivery tasks are rows of the
    same database, so they exist exactly when the change does, and the worker only sees
    them once it is committed.
    """
    endpoint_ensure()
    request_id, idempotency_key = current_request.get()
    event = objects.event(
        type=type,
        obj=obj,
        previous=previous,
        request_id=request_id,
        idempotency_key=idempotency_key,
    )
    endpoints = [
        ep
        for ep in WebhookEndpoint.objects.filter(livemode=False, status="enabled").order_by(
            "djstripe_id"
        )
        if _wants(ep, type)
    ]
    event["pending_webhooks"] = len(endpoints)
    store.save(event)
    delivery.deliveries_queue(event, [endpoint.id for endpoint in endpoints])
    logger.info("Stripe sandbox: event %s %s", event["id"], type)
    return event


def changes(old: Obj, new: Obj) -> Obj:
    """Stripe's previous_attributes: the old values of the top-level fields that changed."""
    return {
        k: old.get(k)
        for k in set(old) | set(new)
        if not k.startswith("_") and old.get(k) != new.get(k)
    }
