"""Webhook delivery, the way Stripe does it: signed, after commit, retried with backoff.

Each (event, endpoint) pair is a `Delivery` row; a django-tasks task attempts it. A
non-2xx answer (or no answer) schedules the next attempt with exponential backoff,
up to MAX_ATTEMPTS. `deliver_pending()` attempts every pending delivery right away.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django_tasks import task
from djstripe.models import WebhookEndpoint

from stripe_sandbox import store
from stripe_sandbox.models import Delivery

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
FIRST_RETRY = timedelta(seconds=10)
BACKOFF_FACTOR = 4  # 10 s, 40 s, 160 s, ~11 min: bounded, unlike Stripe's three days
TIMEOUT_SECONDS = 10

# Sends (url, body, headers) and answers the HTTP status.
Transport = Callable[[str, bytes, Mapping[str, str]], int]


def http_transport(url: str, body: bytes, headers: Mapping[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def client_transport(client: Any) -> Transport:
    """A transport through a Django test `Client`, for tests that need no server."""

    def send(url: str, body: bytes, headers: Mapping[str, str]) -> int:
        extra = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        response = client.post(
            urlsplit(url).path, data=body, content_type=headers["Content-Type"], headers=extra
        )
        return int(response.status_code)

    return send


def signature_header(secret: str, payload: bytes, timestamp: int) -> str:
    """Stripe-Signature: `t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<payload>")>`."""
    signed = f"{timestamp}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def endpoint_url(endpoint: WebhookEndpoint) -> str:
    # Read at send time: SITE_URL may differ from when the endpoint was made (tests).
    path = reverse("djstripe:djstripe_webhook_by_uuid", kwargs={"uuid": endpoint.djstripe_uuid})
    return f"{settings.SITE_URL}{path}"


def _backoff(attempts: int) -> timedelta:
    return FIRST_RETRY * BACKOFF_FACTOR ** (attempts - 1)


def delivery_attempt(delivery: Delivery, *, transport: Transport | None = None) -> bool:
    """Send `delivery` once; record the outcome and schedule a retry. True if accepted."""
    transport = transport or http_transport
    event = store.find(delivery.event_id, "event")
    endpoint = WebhookEndpoint.objects.filter(id=delivery.endpoint_id, status="enabled").first()
    if event is None or endpoint is None:
        delivery.state = Delivery.State.FAILED
        delivery.last_error = "event or enabled endpoint not found"
        delivery.save(update_fields=["state", "last_error"])
        return False

    payload = json.dumps(store.render(event), indent=2).encode()
    # The signature's timestamp is real time (not the sandbox clock): it is checked
    # against the receiver's clock within a tolerance.
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "Stripe-Signature": signature_header(endpoint.secret, payload, int(time.time())),
        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
    }
    delivery.attempts += 1
    status: int | None = None
    error = ""
    try:
        status = transport(endpoint_url(endpoint), payload, headers)
    except Exception as exc:  # noqa: BLE001 - any failure to deliver is retried, as Stripe does
        error = f"{type(exc).__name__}: {exc}"
    ok = status is not None and 200 <= status < 300
    delivery.last_status = status
    delivery.last_error = error if error or ok else f"HTTP {status}"
    with transaction.atomic():
        if ok:
            delivery.state = Delivery.State.SUCCEEDED
            delivery.delivered_at = timezone.now()
        elif delivery.attempts >= MAX_ATTEMPTS:
            delivery.state = Delivery.State.FAILED
        else:
            delivery.next_attempt_at = timezone.now() + _backoff(delivery.attempts)
            delivery_run.using(run_after=delivery.next_attempt_at).enqueue(
                delivery.pk, delivery.attempts + 1
            )
        delivery.save()
    log = logger.info if ok else logger.warning
    log(
        "Stripe sandbox: delivery of %s (%s) attempt %s: %s",
        delivery.event_id,
        event["type"],
        delivery.attempts,
        "ok" if ok else delivery.last_error,
    )
    return ok


@task()
def delivery_run(delivery_id: int, attempt: int) -> str:
    """Attempt number `attempt` of one delivery; stale if someone already made it."""
    delivery = Delivery.objects.filter(
        pk=delivery_id, state=Delivery.State.PENDING, attempts=attempt - 1
    ).first()
    if delivery is None:
        return "stale"
    return "delivered" if delivery_attempt(delivery) else delivery.state


@dataclass
class DeliveryReport:
    succeeded: int = 0
    failed: int = 0


def deliver_pending(*, transport: Transport | None = None) -> DeliveryReport:
    """Attempt every pending delivery now, oldest first, including those that the
    deliveries themselves cause (the receiver's API calls can emit new events)."""
    report = DeliveryReport()
    seen: set[int] = set()
    while batch := list(
        Delivery.objects.filter(state=Delivery.State.PENDING)
        .exclude(pk__in=seen)
        .order_by("id")[:100]
    ):
        for row in batch:
            seen.add(row.pk)
            if delivery_attempt(row, transport=transport):
                report.succeeded += 1
            else:
                report.failed += 1
    return report
