"""Webhook delivery, the way Stripe does it: signed, after commit, retried with backoff.

Each (event, endpoint) pair is a `Delivery` row; a django-tasks task attempts it. Two
modes (settings.STRIPE_SANDBOX_DELIVERY):

- "stripe": at least once and in no guaranteed order, as Stripe promises. Each delivery
  is sent after a random delay of up to WINDOW (so that events emitted together arrive
  shuffled), a share of them (DUPLICATE_SHARE) is delivered twice (a second `Delivery`
  row of the same event), and a failure is retried with exponential backoff from
  STRIPE_RETRY_FIRST, doubling, for up to three days after the event on the sandbox
  clock (Stripe's live mode). The randomness comes from settings.STRIPE_SANDBOX_SEED and
  the number of deliveries made so far, so a run with the same seed makes the same
  choices.
- "ordered": each event at once, in the order emitted; failures retried after 10 s,
  40 s, 160 s, 640 s (MAX_ATTEMPTS in all). For debugging.

`next_attempt_at` is on the sandbox clock: moving the clock (`stripe_sandbox advance`)
makes retries due, and `retries_due()` queues them. `deliver_pending()` attempts every
pending delivery right away (in "stripe" mode in the order of their planned times).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django_tasks import task
from djstripe.models import WebhookEndpoint

from devtools.stripe_sandbox import store
from devtools.stripe_sandbox.models import Delivery

logger = logging.getLogger(__name__)

# "ordered" mode: a bounded retry schedule, for debugging.
MAX_ATTEMPTS = 5
FIRST_RETRY = timedelta(seconds=10)
BACKOFF_FACTOR = 4  # 10 s, 40 s, 160 s, ~11 min
TIMEOUT_SECONDS = 10

# "stripe" mode. Stripe documents delivery at least once, in no guaranteed order, and
# retries "for up to three days with an exponential back off" in live mode; it does not
# publish the intervals, so these are the sandbox's.
WINDOW = timedelta(seconds=2)  # each delivery waits a random 0..WINDOW: reordered within it
DUPLICATE_SHARE = 0.1  # share of deliveries made twice
STRIPE_RETRY_FIRST = timedelta(minutes=5)  # then 10 min, 20 min, ... doubling
STRIPE_RETRY_FOR = timedelta(days=3)  # after the event, on the sandbox clock

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


def stripe_mode() -> bool:
    mode: str = settings.STRIPE_SANDBOX_DELIVERY
    return mode == "stripe"


def clock_now() -> datetime:
    """Now on the sandbox clock, as a datetime."""
    return timezone.now() + timedelta(seconds=store.clock_offset())


def _real_time(clock_time: datetime) -> datetime:
    """When the sandbox clock (as it stands) shows `clock_time`, in real time."""
    return clock_time - timedelta(seconds=store.clock_offset())


def delivery_plan(ordinal: int, *, seed: int | None = None) -> list[timedelta]:
    """In "stripe" mode, the delays before the deliveries of the `ordinal`-th delivery
    made (one, or two for a duplicate): a function of the seed (settings.
    STRIPE_SANDBOX_SEED by default) and the ordinal alone, so that the same seed and the
    same sequence of events make the same choices."""
    choices = random.Random(f"{settings.STRIPE_SANDBOX_SEED if seed is None else seed}:{ordinal}")
    delays = [choices.uniform(0, WINDOW.total_seconds())]
    if choices.random() < DUPLICATE_SHARE:
        delays.append(choices.uniform(0, 2 * WINDOW.total_seconds()))
    return [timedelta(seconds=round(delay, 3)) for delay in delays]


def deliveries_queue(event: Mapping[str, Any], endpoint_ids: list[str]) -> list[Delivery]:
    """Create and enqueue the deliveries of a newly stored `event` (in its transaction)."""
    made: list[Delivery] = []
    now = timezone.now()
    clock = clock_now()
    for endpoint_id in endpoint_ids:
        if not stripe_mode():
            row = Delivery.objects.create(
                event_id=event["id"], endpoint_id=endpoint_id, next_attempt_at=clock
            )
            delivery_run.enqueue(row.pk, 1)
            made.append(row)
            continue
        for wait in delivery_plan(Delivery.objects.count()):
            row = Delivery.objects.create(
                event_id=event["id"], endpoint_id=endpoint_id, next_attempt_at=clock + wait
            )
            delivery_run.using(run_after=now + wait).enqueue(row.pk, 1)
            made.append(row)
    return made


def _next_attempt(delivery: Delivery, event: Mapping[str, Any]) -> datetime | None:
    """When to try `delivery` again after its failed attempt number `attempts`, on the
    sandbox clock; None once the mode's retries are used up."""
    if not stripe_mode():
        if delivery.attempts >= MAX_ATTEMPTS:
            return None
        factor: int = BACKOFF_FACTOR ** (delivery.attempts - 1)  # attempts >= 1 here
        return clock_now() + FIRST_RETRY * factor
    due = clock_now() + STRIPE_RETRY_FIRST * 2 ** (delivery.attempts - 1)
    deadline = datetime.fromtimestamp(event["created"], tz=UTC) + STRIPE_RETRY_FOR
    return due if due <= deadline else None


def delivery_attempt(delivery: Delivery, *, transport: Transport | None = None) -> bool | None:
    """Send `delivery` once; record the outcome and schedule a retry. True if accepted,
    False if not, None if another task made this attempt already (nothing sent)."""
    transport = transport or http_transport
    # Claim the attempt: two tasks for one attempt (its scheduled one and one queued by
    # a clock move) send it once.
    claimed = Delivery.objects.filter(
        pk=delivery.pk, state=Delivery.State.PENDING, attempts=delivery.attempts
    ).update(attempts=delivery.attempts + 1)
    if not claimed:
        return None
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
    delivery.attempts += 1  # as claimed
    status: int | None = None
    error = ""
    try:
        status = transport(endpoint_url(endpoint), payload, headers)
    except Exception as exc:  # any failure to deliver is retried, as Stripe does
        error = f"{type(exc).__name__}: {exc}"
    ok = status is not None and 200 <= status < 300
    delivery.last_status = status
    delivery.last_error = error if error or ok else f"HTTP {status}"
    with transaction.atomic():
        if ok:
            delivery.state = Delivery.State.SUCCEEDED
            delivery.delivered_at = timezone.now()
        elif (retry_at := _next_attempt(delivery, event)) is None:
            delivery.state = Delivery.State.FAILED
        else:
            delivery.next_attempt_at = retry_at
            delivery_run.using(run_after=_real_time(retry_at)).enqueue(
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
    outcome = delivery_attempt(delivery)
    if outcome is None:
        return "stale"
    return "delivered" if outcome else delivery.state


def retries_due() -> int:
    """Queue now every retry the sandbox clock has reached (after `advance`); returns how
    many. The retry's own task, due later in real time, then finds it made (stale)."""
    due = list(
        Delivery.objects.filter(
            state=Delivery.State.PENDING, attempts__gt=0, next_attempt_at__lte=clock_now()
        ).values_list("pk", "attempts")
    )
    for pk, attempts in due:
        delivery_run.enqueue(pk, attempts + 1)
    return len(due)


@dataclass
class DeliveryReport:
    succeeded: int = 0
    failed: int = 0


def deliver_pending(*, transport: Transport | None = None) -> DeliveryReport:
    """Attempt every pending delivery now, including those that the deliveries themselves
    cause (the receiver's API calls can emit new events): oldest first ("ordered"), or in
    the order of their planned (random) times ("stripe")."""
    report = DeliveryReport()
    seen: set[int] = set()
    order = ("next_attempt_at", "id") if stripe_mode() else ("id",)
    while batch := list(
        Delivery.objects.filter(state=Delivery.State.PENDING)
        .exclude(pk__in=seen)
        .order_by(*order)[:100]
    ):
        for row in batch:
            seen.add(row.pk)
            outcome = delivery_attempt(row, transport=transport)
            if outcome:
                report.succeeded += 1
            elif outcome is not None:
                report.failed += 1
    return report
