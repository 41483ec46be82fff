"""Stripe's webhooks: acknowledged at once, processed by the workers.

Stripe asks for a 2xx "before any complex logic" and retries what is not acknowledged
within its timeout; processing in the request (dj-stripe's way) makes Stripe's own API
latency our acknowledgement time, and a renewal day queues deliveries behind each other
until they time out and come again. So:

- **Acknowledge** (`acknowledge`, from the view): the signature is checked against the
  endpoint's secret, or a previous one still inside its rotation window; then, in ONE
  transaction, the body is stored as dj-stripe's WebhookEventTrigger, a WebhookDelivery
  row is made for the event id, and a `billing.tasks.webhook_process` task is queued
  (django-tasks-db: a row in the same database, so the three commit or vanish together).
  A duplicate delivery of a known event id only counts (`deliveries`). No Stripe call.
- **Process** (`delivery_process`, in a worker): one transaction per event holding the
  customer's advisory lock (PostgreSQL), inside which dj-stripe's own machinery runs
  (`WebhookEventTrigger.process`: re-read the object from Stripe, sync, the one handler
  for the event type, billing/handlers.py). The delivery is marked processed in that same
  transaction, so a worker killed half-way leaves it pending and the task is run again
  (smartflow/workers.py); a second run of a processed delivery does nothing.
- **Fail**: a transient failure (Stripe unreachable, 5xx, a deadlock, any error we do
  not know to be permanent) is retried
  with exponential backoff for RETRY_FOR after the event was first received, as Stripe
  itself would have retried; a permanent one (`resource_missing`: the object was deleted
  at Stripe) and a delivery that ran out of retries become a BillingAlert with the event
  and stay for staff, who can process them again from the admin (`process_again`).
- **Not failures**: an event whose customer's lock is taken (another worker has one of
  its events) waits for it a few seconds, or, when it may not wait or the lock stays
  taken, goes back to the queue for a second (`customer_lock`, `_later`).
  Stripe's 429 is not a failure either. Every Stripe request keeps the
  deployment's pace and a 429 is asked again in place (billing/stripe_pace.py); one that
  persists puts the event back in the queue after Stripe's Retry-After, its attempts
  uncounted (`_later`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
import stripe
from django.conf import settings
from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import F, Min, Q
from django.http import HttpRequest
from django.utils import timezone
from django_tasks_db.models import DBTaskResult
from djstripe.models import Event, WebhookEndpoint, WebhookEventTrigger
from djstripe.models.webhooks import get_remote_ip
from djstripe.settings import djstripe_settings

from billing import speedups
from billing.alerts import alert_record
from billing.event_scope import event_scope
from billing.models import BillingAlert, WebhookDelivery, WebhookSecretPrevious
from billing.stripe_pace import retry_after
from billing.tasks import webhook_process

logger = logging.getLogger(__name__)

# Stripe retries an unacknowledged live-mode event "for up to three days with an
# exponential back off"; a failed processing is retried for as long, so that nothing
# Stripe would have got through is dropped by acknowledging early.
RETRY_FOR = timedelta(days=3)
RETRY_FIRST = timedelta(seconds=5)  # then 10 s, 20 s, ... doubling
RETRY_MAX = timedelta(hours=1)  # between two attempts: 3 days is ~80 attempts
# When another worker is processing one of the customer's events, the event waits for it
# up to LOCK_WAIT (`customer_lock`), else goes back to the queue for about BUSY_WAIT (one
# event takes about a second: two or three Stripe calls).
LOCK_WAIT = timedelta(seconds=3)
BUSY_WAIT = timedelta(seconds=1)


class PermanentFailure(Exception):
    """Processing can never succeed: record it for staff, do not retry."""


@dataclass(frozen=True)
class Acknowledged:
    delivery_id: int
    duplicate: bool


# --- Acknowledge ------------------------------------------------------------------------


def signature_valid(endpoint: WebhookEndpoint, body: str, header: str) -> bool:
    """Whether `header` signs `body` with the endpoint's secret, or with a previous
    secret still inside its rotation window (read only when the current one fails)."""
    tolerance = endpoint.djstripe_tolerance

    def verifies(secret: str) -> bool:
        try:
            stripe.WebhookSignature.verify_header(body, header, secret, tolerance)
        except stripe.SignatureVerificationError:
            return False
        return True

    if endpoint.secret and verifies(endpoint.secret):
        return True
    previous = WebhookSecretPrevious.objects.filter(
        endpoint=endpoint, expires_at__gt=timezone.now()
    ).values_list("secret", flat=True)
    return any(verifies(secret) for secret in previous)


# What the acknowledgement reads of the endpoint (the view, signature_valid, acknowledge).
ENDPOINT_FIELDS = (
    "id",
    "livemode",
    "secret",
    "djstripe_tolerance",
    "djstripe_owner_account",
    "djstripe_uuid",
    "status",
)


def endpoint_load(uuid: UUID) -> WebhookEndpoint | None:
    """The endpoint of `/stripe/webhook/<uuid>/` with only the columns an acknowledgement
    reads (not stripe_data's JSON; any other field would load lazily). On PostgreSQL a
    prepared statement (billing/speedups.py)."""
    if speedups.ack_prepared():
        return speedups.endpoint_load(uuid, ENDPOINT_FIELDS)
    # djstripe_uuid is unique, so no ORDER BY (.first() would add one).
    queryset = WebhookEndpoint.objects.filter(djstripe_uuid=uuid).only(*ENDPOINT_FIELDS)
    return next(iter(queryset[:1]), None)


def customer_key(event: dict[str, Any]) -> str:
    """Whose events are processed one at a time: the Stripe customer of the event's
    object (the object itself for a customer), else the object."""
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict):
        return ""
    key = obj.get("id") if obj.get("object") == "customer" else obj.get("customer")
    if isinstance(key, dict):  # an expanded customer
        key = key.get("id")
    if not isinstance(key, str) or not key:
        key = obj.get("id")
    return key[:255] if isinstance(key, str) else ""


def acknowledge(
    request: HttpRequest, *, endpoint: WebhookEndpoint, event: dict[str, Any]
) -> Acknowledged:
    """Store a verified delivery and queue its processing, all or nothing. A duplicate of
    a stored event id is counted and queues nothing.

    The rule's own way: the ORM's statements and `enqueue()` in one transaction. On
    PostgreSQL with django-tasks-db (production, the bench), the same in ONE prepared
    statement, its own transaction (billing/speedups.py, with its measured win)."""
    now = timezone.now()
    body = request.body.decode(request.encoding or "utf-8")
    one_statement = speedups.ack_backend(webhook_process)
    for last_try in (False, True):
        # New objects for each try: a failed one may carry the pk of a row rolled back.
        trigger, delivery = _rows(
            event,
            endpoint,
            now,
            headers=dict(request.headers),
            body=body,
            remote_ip=get_remote_ip(request),
        )
        try:
            if one_statement is not None:
                # Inside a caller's transaction (tests), a savepoint keeps it usable
                # after a lost race; on its own the statement is its transaction.
                with transaction.atomic() if connection.in_atomic_block else nullcontext():
                    delivery_id, duplicate = speedups.store(
                        trigger, delivery, now, task=webhook_process, backend=one_statement
                    )
            else:
                with transaction.atomic():
                    delivery_id, duplicate = _store(trigger, delivery, now)
                    if not duplicate:
                        webhook_process.enqueue(delivery_id)
        except IntegrityError:
            # The same event, delivered at the same moment, was being stored by another
            # request, which committed first: nothing of this one is kept; once more,
            # and the duplicate check finds it.
            if last_try:
                raise
            continue
        return Acknowledged(delivery_id, duplicate)
    raise AssertionError("unreachable")


def _rows(
    event: dict[str, Any],
    endpoint: WebhookEndpoint,
    now: datetime,
    *,
    headers: dict[str, str],
    body: str,
    remote_ip: str,
    **delivery_fields: Any,
) -> tuple[WebhookEventTrigger, WebhookDelivery]:
    """The two rows an event is stored as, unsaved: dj-stripe's WebhookEventTrigger with
    the body, and our WebhookDelivery (delivered, or recovered: `delivery_fields`)."""
    trigger = WebhookEventTrigger(
        headers=headers,
        body=body,
        remote_ip=remote_ip,
        valid=True,
        stripe_trigger_account_id=endpoint.djstripe_owner_account_id,
        webhook_endpoint=endpoint,
    )
    delivery = WebhookDelivery(
        event_id=str(event["id"])[:255],
        event_type=str(event.get("type") or "")[:255],
        livemode=bool(event.get("livemode")),
        customer_key=customer_key(event),
        received_at=now,
        last_delivered_at=now,
        retry_until=now + RETRY_FOR,
        **delivery_fields,
    )
    return trigger, delivery


def _store(
    trigger: WebhookEventTrigger, delivery: WebhookDelivery, now: datetime
) -> tuple[int, bool]:
    """The ORM's way (SQLite, tests): count a duplicate, else insert the trigger and the
    delivery. (delivery id, duplicate); a concurrent insert raises IntegrityError."""
    updated = WebhookDelivery.objects.filter(event_id=delivery.event_id).update(
        deliveries=F("deliveries") + 1, last_delivered_at=now
    )
    if updated:
        pk = (
            WebhookDelivery.objects.filter(event_id=delivery.event_id)
            .values_list("pk", flat=True)
            .first()
        )
        if pk is not None:  # else deleted meanwhile (staff): store it as new
            return pk, True
    trigger.save(force_insert=True)
    delivery.trigger = trigger
    delivery.save(force_insert=True)
    return delivery.pk, False


# Who stored a recovered event's trigger, where a delivered one has the request's: no
# request, so no client address (the field is required) and this header instead.
RECOVERED_IP = "0.0.0.0"
RECOVERED_HEADER = "X-SmartFlow-Recovered"
# A recovered event's task is claimed after the live webhooks' (priority 0, django-tasks-db
# claims the highest first): hours of missed events found at once go through the queue
# behind what Stripe sends now, whose customers are waiting on it (a checkout's plan).
# Their order does not matter to the plan: dj-stripe re-reads each object from Stripe.
RECOVERED_PRIORITY = -10


def known_event_ids(event_ids: Iterable[str]) -> set[str]:
    """Which of `event_ids` are here already: a delivery, or dj-stripe's Event of one
    processed before the queue existed (dj-stripe processed it in the request)."""
    ids = list(event_ids)
    known = set(WebhookDelivery.objects.filter(event_id__in=ids).values_list("event_id", flat=True))
    return known | set(Event.objects.filter(id__in=ids).values_list("id", flat=True))


def recovered_store(
    event: dict[str, Any], *, endpoint: WebhookEndpoint, source: str, now: datetime | None = None
) -> int | None:
    """Store an event fetched from Stripe's Events API and never delivered here as if it
    had been: the same trigger, delivery and task as `acknowledge`'s, all or nothing, the
    delivery marked `recovered_at` with `deliveries` 0. None when the event id is stored
    already (checked under the unique event_id: a delivery of the same event committed
    meanwhile makes this insert fail, and it is left at that), else the delivery's id."""
    now = now or timezone.now()
    trigger, delivery = _rows(
        event,
        endpoint,
        now,
        headers={RECOVERED_HEADER: source},
        body=json.dumps(event),
        remote_ip=RECOVERED_IP,
        deliveries=0,
        recovered_at=now,
    )
    if known_event_ids([delivery.event_id]):
        return None
    try:
        # A savepoint inside a caller's transaction; else its own transaction.
        with transaction.atomic():
            trigger.save(force_insert=True)
            delivery.trigger = trigger
            delivery.save(force_insert=True)
            webhook_process.using(priority=RECOVERED_PRIORITY).enqueue(delivery.pk)
    except IntegrityError:
        return None  # delivered (or recovered by another run) at this very moment
    return delivery.pk


# --- Process ----------------------------------------------------------------------------


def _lock_id(key: str) -> int:
    return int.from_bytes(hashlib.sha256(f"stripe:{key}".encode()).digest()[:8], "big", signed=True)


class CustomerBusy(Exception):
    """Another worker is processing one of the customer's events right now."""


def customer_lock(key: str) -> None:
    """Hold `key`'s advisory lock until the transaction ends (PostgreSQL), or raise
    CustomerBusy: the event goes back to the queue for a moment (`_later`) and this
    thread takes another customer's.

    dj-stripe re-reads each event's object from Stripe and stores what it read. Two
    events of one customer processed side by side can read Stripe before and after a
    change and store in the other order: the older state last, with the plan computed
    from it. Under this lock each one reads Stripe after the previous one committed, so
    the last stores Stripe's latest state. SQLite needs none: its IMMEDIATE transactions
    already let one writer in at a time.

    A taken lock is waited for, up to LOCK_WAIT, by one thread per customer and by at
    most half of the process's WORKER_CONCURRENCY threads (so none with 1), the others
    going on with other customers' events: Stripe sends a customer's events in bursts
    (an invoice's four, a renewal's two), and a requeued event costs a dozen statements
    and a second's delay, mostly to find the lock taken again. Measured in the renewal
    storm (2,000 events, first meeting, 2 workers x 16, alternating runs on the shared
    2-core machine): requeues about 1,100 -> about 15, the workers' CPU per event 70 ->
    60 ms (means of 4 and 5 runs), the drain 17.9 -> 20.3 events/s.
    """
    if connection.vendor != "postgresql" or not key:
        return
    lock_id = _lock_id(key)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [lock_id])
        (locked,) = cursor.fetchone()
        if locked:
            return
        with _lock_waiters.waiting(key) as allowed:
            if not allowed:
                raise CustomerBusy(key)
            # lock_timeout for this wait only: the transaction's other locks (the
            # delivery's row, the handlers') keep the connection's own setting.
            cursor.execute(
                "SELECT current_setting('lock_timeout'), set_config('lock_timeout', %s, true)",
                [f"{int(LOCK_WAIT.total_seconds() * 1000)}ms"],
            )
            (previous, _) = cursor.fetchone()
            try:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [lock_id])
            except OperationalError as exc:
                if isinstance(exc.__cause__, psycopg.errors.LockNotAvailable):
                    raise CustomerBusy(key) from exc  # and the transaction is rolled back
                raise
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", [previous])


class _LockWaiters:
    """The customers whose lock a thread of this process is waiting for (`customer_lock`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: set[str] = set()

    @contextmanager
    def waiting(self, key: str) -> Iterator[bool]:
        """Whether this thread may wait for `key`'s lock; if so, counted until the block ends."""
        with self._lock:
            allowed = key not in self._keys and len(self._keys) < settings.WORKER_CONCURRENCY // 2
            if allowed:
                self._keys.add(key)
        try:
            yield allowed
        finally:
            if allowed:
                with self._lock:
                    self._keys.discard(key)


_lock_waiters = _LockWaiters()


def _api_key(trigger: WebhookEventTrigger) -> str:
    account = trigger.stripe_trigger_account
    endpoint = trigger.webhook_endpoint
    livemode = bool(endpoint.livemode) if endpoint else bool(trigger.json_body.get("livemode"))
    key: str = (account.default_api_key if account else None) or (
        djstripe_settings.get_default_api_key(livemode)
    )
    return key


def delivery_process(delivery_id: int) -> str:
    """Process one delivery (the worker's task). Returns what happened: "processed",
    "done already", "not due", "customer busy", "rate limited", "retry", "failed" or
    "gave up"."""
    delivery = (
        WebhookDelivery.objects.select_related(
            "trigger__webhook_endpoint", "trigger__stripe_trigger_account"
        )
        .filter(pk=delivery_id)
        .first()
    )
    if delivery is None or delivery.state != WebhookDelivery.State.PENDING:
        return "done already"
    if delivery.next_attempt_at and delivery.next_attempt_at > timezone.now():
        return "not due"  # a retry is planned; its own task runs it then
    try:
        with transaction.atomic():
            customer_lock(delivery.customer_key)
            # Under the lock: another worker may have processed it while this one waited.
            current = (
                WebhookDelivery.objects.select_for_update()
                .filter(pk=delivery.pk, state=WebhookDelivery.State.PENDING)
                .values_list("reprocess", flat=True)
                .first()
            )
            if current is None:
                return "done already"
            # dj-stripe's Account and key looked up once (billing/event_scope.py).
            with event_scope():
                _event_process(delivery, reprocess=bool(current))
            WebhookDelivery.objects.filter(pk=delivery.pk).update(
                state=WebhookDelivery.State.PROCESSED,
                processed_at=timezone.now(),
                next_attempt_at=None,
                reprocess=False,
            )
    except Exception as exc:  # every failure is recorded and decided below
        return _failed(delivery.pk, exc)
    logger.info("Stripe event %s (%s) processed", delivery.event_id, delivery.event_type)
    return "processed"


def _event_process(delivery: WebhookDelivery, *, reprocess: bool) -> None:
    trigger = delivery.trigger
    if trigger is None:
        raise PermanentFailure("The delivery's body is gone (its WebhookEventTrigger was deleted).")
    stored = Event.objects.filter(id=delivery.event_id).first() if reprocess else None
    if stored is None and delivery.body_purged_at is not None:
        raise PermanentFailure(
            f"The delivery's body was removed on {delivery.body_purged_at:%Y-%m-%d} (retention, "
            "RETENTION_WEBHOOK_BODY_DAYS) and dj-stripe has no stored event to run again."
        )
    if stored is not None:
        # "Process again" of a stored event: dj-stripe's handlers re-read the object from
        # Stripe and sync it; ours then decide again. Both are safe to run twice.
        stored.invoke_webhook_handlers()
        trigger.event = stored
    else:
        trigger.process(save=False, api_key=_api_key(trigger))
    trigger.processed = True
    trigger.exception = ""
    trigger.traceback = ""
    trigger.save(update_fields=["event", "processed", "exception", "traceback", "updated"])


def failure_permanent(exc: BaseException) -> bool:
    """Whether processing failed for good: the object is gone at Stripe, or we said so.
    Anything else may pass later (Stripe back, a lock free, a fix deployed) and is
    retried for as long as Stripe would have retried it."""
    if isinstance(exc, PermanentFailure):
        return True
    return isinstance(exc, stripe.InvalidRequestError) and exc.code == "resource_missing"


def retry_delay(attempts: int) -> timedelta:
    """Exponential backoff after the `attempts`-th failure, with jitter (±20 %) so a
    backlog retried after an outage does not come back all at once."""
    base: timedelta = min(RETRY_FIRST * (2 ** max(attempts - 1, 0)), RETRY_MAX)
    return base * random.uniform(0.8, 1.2)


def _failed(delivery_id: int, exc: Exception) -> str:
    if isinstance(exc, CustomerBusy):
        return _later(delivery_id, BUSY_WAIT * random.uniform(0.8, 1.2), "customer busy")
    if isinstance(exc, stripe.RateLimitError):
        wait = retry_after(exc.headers)
        delay = timedelta(seconds=wait) if wait is not None else RETRY_FIRST
        return _later(delivery_id, delay * random.uniform(1, 1.2), "rate limited")
    now = timezone.now()
    error = f"{type(exc).__name__}: {exc}"[:2000]
    with transaction.atomic():
        delivery = WebhookDelivery.objects.select_for_update().filter(pk=delivery_id).first()
        if delivery is None or delivery.state != WebhookDelivery.State.PENDING:
            return "done already"
        delivery.attempts += 1
        delivery.last_error = error
        if failure_permanent(exc):
            delivery.state = WebhookDelivery.State.FAILED
            outcome = "failed"
        elif now >= (delivery.retry_until or delivery.received_at + RETRY_FOR):
            delivery.state = WebhookDelivery.State.GAVE_UP
            outcome = "gave up"
        else:
            outcome = "retry"
            # Of two tasks failing for one delivery (a retry and a "process again"), the
            # second finds the next attempt already planned and plans none.
            if delivery.next_attempt_at is None or delivery.next_attempt_at <= now:
                delivery.next_attempt_at = now + retry_delay(delivery.attempts)
                webhook_process.using(run_after=delivery.next_attempt_at).enqueue(delivery.pk)
        delivery.save()
        if outcome != "retry":
            _alert(delivery, permanent=outcome == "failed")
    if outcome == "retry":
        logger.warning(
            "Stripe event %s (%s) attempt %s failed, retried at %s: %s",
            delivery.event_id,
            delivery.event_type,
            delivery.attempts,
            delivery.next_attempt_at,
            error,
            exc_info=True,
        )
    else:
        logger.error(
            "Stripe event %s (%s) not processed (%s): %s",
            delivery.event_id,
            delivery.event_type,
            outcome,
            error,
            exc_info=exc,
        )
    return outcome


def _later(delivery_id: int, delay: timedelta, why: str) -> str:
    """Back to the queue after `delay`, not as a failed attempt: the customer's lock was
    taken ("customer busy"), or Stripe still answered 429 after the client asked again
    (billing/stripe_pace.py; "rate limited", after Stripe's Retry-After or RETRY_FIRST).
    Nothing is wrong with the event, so its attempts are not counted and no warning is
    logged."""
    now = timezone.now()
    with transaction.atomic():
        delivery = WebhookDelivery.objects.select_for_update().filter(pk=delivery_id).first()
        if delivery is None or delivery.state != WebhookDelivery.State.PENDING:
            return "done already"
        # Of two tasks for one delivery, the second finds the attempt planned.
        if delivery.next_attempt_at is None or delivery.next_attempt_at <= now:
            delivery.next_attempt_at = now + delay
            delivery.save(update_fields=["next_attempt_at"])
            webhook_process.using(run_after=delivery.next_attempt_at).enqueue(delivery.pk)
    logger.info(
        "Stripe event %s (%s): %s, processed again at %s (not a failure)",
        delivery.event_id,
        delivery.event_type,
        why,
        delivery.next_attempt_at,
    )
    return why


def _alert(delivery: WebhookDelivery, *, permanent: bool) -> None:
    why = (
        "failed for good and is not retried"
        if permanent
        else f"was retried for {RETRY_FOR.days} days and never succeeded"
    )
    detail = (
        f"{delivery.event_type} {why} ({delivery.attempts} attempts). Last error: "
        f'{delivery.last_error} Fix the cause, then use "Process again" on the webhook '
        "delivery."
    )
    alert, created = alert_record(
        kind=BillingAlert.Kind.WEBHOOK_FAILED,
        stripe_id=delivery.event_id,
        detail=detail,
        stripe_event_id=delivery.event_id,
    )
    if not created:
        BillingAlert.objects.filter(pk=alert.pk).update(
            detail=detail,
            seen_count=F("seen_count") + 1,
            last_seen_at=timezone.now(),
            resolved=False,
        )


# --- Staff and operators ----------------------------------------------------------------


def process_again(deliveries: Iterable[WebhookDelivery]) -> int:
    """Queue deliveries to be processed (again) now: failed ones, those that gave up,
    pending ones waiting for a retry, and processed ones (their handlers run again, which
    re-reads Stripe). Returns how many were queued."""
    queued = 0
    with transaction.atomic():
        for delivery in deliveries:
            stored = delivery.state == WebhookDelivery.State.PROCESSED
            WebhookDelivery.objects.filter(pk=delivery.pk).update(
                state=WebhookDelivery.State.PENDING,
                reprocess=stored or F("reprocess"),
                next_attempt_at=None,
                attempts=0 if delivery.state != WebhookDelivery.State.PENDING else F("attempts"),
                retry_until=timezone.now() + RETRY_FOR,
            )
            webhook_process.enqueue(delivery.pk)
            queued += 1
    return queued


def failed_tasks_requeue(*, now: datetime | None = None) -> int:
    """Queue again the processing tasks that failed outright, for the worker's recovery
    (smartflow/workers.py). `delivery_process` records every failure of the processing
    itself; a task fails only when that record could not be written either (the
    database went away mid-way), which leaves its delivery pending with no retry
    planned. Run again, a task whose delivery is done returns "done already"."""
    from django_tasks import TaskResultStatus

    now = now or timezone.now()
    requeued = DBTaskResult.objects.filter(
        status=TaskResultStatus.FAILED,
        task_path="billing.tasks.webhook_process",
        finished_at__gte=now - RETRY_FOR,
    ).update(
        status=TaskResultStatus.READY,
        started_at=None,
        finished_at=None,
        run_after=now + RETRY_FIRST,
        exception_class_path="",
        traceback="",
    )
    if requeued:
        logger.warning("%s webhook processing tasks had failed outright: queued again", requeued)
    return requeued


def backlog() -> tuple[int, datetime | None]:
    """How many deliveries wait to be processed, and when the oldest was received."""
    pending = WebhookDelivery.objects.filter(state=WebhookDelivery.State.PENDING)
    stats = pending.aggregate(oldest=Min("received_at"))
    return pending.count(), stats["oldest"]


def oldest_due(*, now: datetime | None = None) -> datetime | None:
    """Since when the longest-waiting due delivery has been due: its planned retry's
    time, else when it was received or queued again ("process again" restarts its
    RETRY_FOR window); None when none is due. For /healthz/ready (smartflow/health.py)."""
    now = now or timezone.now()
    first_try = Q(next_attempt_at__isnull=True)
    found = (
        WebhookDelivery.objects.filter(state=WebhookDelivery.State.PENDING)
        .exclude(next_attempt_at__gt=now)
        .aggregate(
            retry=Min("next_attempt_at"),
            queued=Min("retry_until", filter=first_try),
            received=Min("received_at", filter=first_try & Q(retry_until__isnull=True)),
        )
    )
    since = [
        found["retry"],
        found["queued"] and found["queued"] - RETRY_FOR,
        found["received"],
    ]
    return min((at for at in since if at is not None), default=None)


def process_due(*, limit: int | None = None) -> int:
    """Process, here and now, every pending delivery that is due (oldest first): what a
    worker would do, for `manage.py billing_webhooks --process` and tests. Returns how
    many were processed."""
    now = timezone.now()
    processed = 0
    while True:
        ids = list(
            WebhookDelivery.objects.filter(state=WebhookDelivery.State.PENDING)
            .exclude(next_attempt_at__gt=now)
            .order_by("received_at", "pk")
            .values_list("pk", flat=True)[:100]
        )
        progressed = False
        for pk in ids:
            outcome = delivery_process(pk)
            if outcome == "processed":
                processed += 1
                progressed = True
            if limit is not None and processed >= limit:
                return processed
        if not progressed:
            return processed
