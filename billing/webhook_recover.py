"""Stripe events that never arrived as webhooks, recovered from Stripe's Events API.

A webhook can be lost for good: the app was down longer than Stripe retries (three days
in live mode, hours in test mode), an endpoint was disabled or misconfigured, a proxy
answered 2xx for us. The subscription it was about then stays stale. Stripe keeps every
event for 30 days (GET /v1/events), so `recover` lists them and queues each one we should
have received and have not, through the SAME store, task and handlers as a delivered
one (billing/webhook_queue.py, `recovered_store`): one WebhookDelivery per event id,
whoever came first, marked `recovered_at` for staff.

The body stored is the event as the Events API lists it, which renders each event in the
API version of its creation (the account's default then), where a webhook carries the
endpoint's version: the same as long as the two agree (`billing_webhook` makes the
endpoint with the pinned STRIPE_API_VERSION; keep the account's default on it). dj-stripe
re-reads the event's object with our pinned version anyway before any handler runs.

"Should have received": an event of the mode we run in, of a type we handle
(billing/handlers.py's HANDLERS), created between `since` ago and GRACE ago. "Received":
its id has a WebhookDelivery, or dj-stripe's Event (processed before the queue existed).

`manage.py billing_webhooks --recover --since 2d` runs it by hand (after an outage:
docs/operations.md). Every worker asks, with its recovery round (smartflow/workers.py),
whether this window of WEBHOOK_RECOVER_EVERY_HOURS has had its recovery; the first to ask
records a WebhookRecoverRun and queues `billing.tasks.webhook_recover_run` in the same
transaction, so one worker among many runs it, once a window. No cron.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

import stripe
from django.conf import settings
from django.utils import timezone
from djstripe.models import WebhookEndpoint

from billing.handlers import HANDLERS
from billing.models import WebhookDelivery, WebhookRecoverRun
from billing.stripe_api import api_kwargs
from billing.tasks import webhook_recover_run
from billing.webhook_queue import known_event_ids, recovered_store
from smartflow.windows import enqueue_once, window_of

logger = logging.getLogger(__name__)

# Stripe's Events API returns the last 30 days only.
EVENTS_KEPT = timedelta(days=30)
# An event younger than this is left alone: Stripe sends it within seconds, but our
# endpoint may still be acknowledging it, or Stripe retrying a first attempt that timed
# out. Recovering it anyway would be harmless (the delivery then only counts), but it
# would show as "recovered" when nothing was lost; 5 minutes is well past Stripe's
# first attempt and its first retries, and the next run picks up what is still missing.
GRACE = timedelta(minutes=5)
# The Events API's `types` filter takes at most 20 names.
TYPES_PER_CALL = 20
PAGE = 100  # events per request, Stripe's largest page
# What a recovered event's trigger says stored it (its headers, in the admin).
SOURCE = "billing_webhooks --recover"

_SINCE = re.compile(r"^\s*(\d+)\s*([dhm])\s*$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


class RecoverError(Exception):
    """Recovery cannot run (no endpoint, a bad --since); the message says why."""


def since_parse(text: str) -> timedelta:
    """`2d`, `12h`, `30m` as a timedelta, at most EVENTS_KEPT; RecoverError otherwise."""
    match = _SINCE.match(text or "")
    if match is None:
        raise RecoverError(
            f"--since {text!r}: give a number and a unit, d (days), h (hours) or m "
            "(minutes), e.g. 2d, 12h or 30m."
        )
    since = timedelta(**{_UNITS[match[2]]: int(match[1])})
    if since <= timedelta(0):
        raise RecoverError(f"--since {text!r}: must be more than nothing.")
    if since > EVENTS_KEPT:
        raise RecoverError(
            f"--since {text!r}: Stripe's Events API keeps events for {EVENTS_KEPT.days} days "
            f"only; give at most {EVENTS_KEPT.days}d."
        )
    return since


def endpoint_for_recovery() -> WebhookEndpoint:
    """The endpoint recovered events are stored under, as if delivered to it: the
    enabled one of our mode that the latest delivery came through, else the first."""
    endpoints = WebhookEndpoint.objects.filter(
        status="enabled", livemode=settings.STRIPE_LIVE_MODE
    ).order_by("djstripe_id")
    latest = (
        WebhookDelivery.objects.filter(trigger__webhook_endpoint__in=endpoints)
        .order_by("-received_at")
        .values_list("trigger__webhook_endpoint", flat=True)
        .first()
    )
    endpoint = endpoints.filter(id=latest).first() if latest else endpoints.first()
    if endpoint is None:
        mode = "live" if settings.STRIPE_LIVE_MODE else "test"
        raise RecoverError(
            f"No enabled {mode}-mode Stripe webhook endpoint is configured: recovered "
            "events are stored as deliveries to it. Set it up first (`manage.py "
            "billing_webhook --secret whsec_...`, docs/deploy.md), then recover."
        )
    return endpoint


@dataclass
class Recovered:
    listed: int = 0  # events of our types and mode that Stripe listed
    already: int = 0  # of which were here already
    queued_ids: list[str] = field(default_factory=list)  # and recovered now (or would be)

    @property
    def queued(self) -> int:
        return len(self.queued_ids)

    def as_dict(self) -> dict[str, int]:
        return {"listed": self.listed, "already": self.already, "queued": self.queued}


def _events(since: datetime, until: datetime) -> Iterator[dict[str, Any]]:
    """Stripe's events of our types created in [since, until], newest first per call, as
    Stripe's JSON (the body a webhook would have carried; stripe-python's objects would
    turn amounts into Decimals). Page by page with `starting_after`."""
    types = sorted(HANDLERS)
    for start in range(0, len(types), TYPES_PER_CALL):
        after: str | None = None
        while True:
            params: dict[str, Any] = {
                "types": types[start : start + TYPES_PER_CALL],
                "created": {"gte": int(since.timestamp()), "lte": int(until.timestamp())},
                "limit": PAGE,
                **api_kwargs(),
            }
            if after:
                params["starting_after"] = after
            listing = stripe.Event.list(**params)
            # The page's JSON as Stripe sent it (every list response carries it).
            response = listing.last_response
            page = cast(dict[str, Any], response.data if response else listing.to_dict())
            events: list[dict[str, Any]] = list(page["data"])
            yield from events
            if not page.get("has_more") or not events:
                break
            after = str(events[-1]["id"])


def _span(delta: timedelta) -> str:
    """`delta` as the log says it: "2 days", "12 hours", "90 minutes"."""
    seconds = int(delta.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{seconds} seconds"


def recover(*, since: timedelta, dry_run: bool = False, now: datetime | None = None) -> Recovered:
    """Queue every event of the last `since` that we should have received and have not
    (not younger than GRACE); with `dry_run`, only say which. Safe to run any number of
    times, also beside the webhooks: an event id is stored once (recovered_store)."""
    endpoint = endpoint_for_recovery()
    now = now or timezone.now()
    since = min(since, EVENTS_KEPT)
    found = Recovered()
    missing: list[dict[str, Any]] = []
    page: list[dict[str, Any]] = []

    def sort_page() -> None:
        known = known_event_ids(event["id"] for event in page)
        found.already += len(known)
        missing.extend(event for event in page if event["id"] not in known)
        page.clear()

    for event in _events(now - since, now - GRACE):
        # The API key sets the mode; an event of the other mode would be refused at the
        # endpoint too (billing/views.py), so never recovered either.
        if bool(event.get("livemode")) != bool(settings.STRIPE_LIVE_MODE):
            continue
        found.listed += 1
        page.append(event)
        if len(page) >= PAGE:
            sort_page()
    sort_page()
    # Oldest first, as Stripe created them (the queue processes in the order stored);
    # Stripe lists newest first, so reversed, a stable sort keeps its order within a second.
    missing.reverse()
    missing.sort(key=lambda event: int(event.get("created") or 0))
    for event in missing:
        if dry_run or recovered_store(event, endpoint=endpoint, source=SOURCE):
            found.queued_ids.append(event["id"])
        else:  # delivered meanwhile
            found.already += 1
    if found.queued and not dry_run:
        logger.warning(
            "Stripe webhooks: %s event(s) of the last %s were never received; recovered "
            "from the Events API and queued: %s",
            found.queued,
            _span(since),
            ", ".join(found.queued_ids[:20]) + (" ..." if found.queued > 20 else ""),
        )
    return found


# --- Daily, by the workers --------------------------------------------------------------


def _every() -> timedelta:
    return timedelta(hours=settings.WEBHOOK_RECOVER_EVERY_HOURS)


def window_start(now: datetime) -> datetime:
    """The start of the WEBHOOK_RECOVER_EVERY_HOURS window `now` falls in (from the
    epoch)."""
    return window_of(now, _every())


def lookback(run: WebhookRecoverRun, *, now: datetime) -> timedelta:
    """How far back a run looks: two periods (a run that failed, or a window no worker
    ran, is covered by the next), or back to the window of the last run that finished,
    plus a period, if that is longer (workers down for days); at most EVENTS_KEPT."""
    back = 2 * _every()
    previous = (
        WebhookRecoverRun.objects.filter(
            finished_at__isnull=False, window_start__lt=run.window_start
        )
        .values_list("window_start", flat=True)
        .first()
    )
    if previous is not None:
        back = max(back, now - previous + _every())
    return min(back, EVENTS_KEPT)


def recover_run(run_id: int) -> dict[str, Any]:
    """The daily recovery (the task's body): recover and record it on the run. Without
    an endpoint it records why (the deploy check billing.E003 says so too); a Stripe
    error fails the task, and the next window's run looks back over this one's."""
    run = WebhookRecoverRun.objects.get(pk=run_id)
    now = timezone.now()
    result: dict[str, Any]
    try:
        result = recover(since=lookback(run, now=now), now=now).as_dict()
    except RecoverError as exc:
        logger.error("Stripe webhook recovery not run: %s", exc)
        result = {"error": str(exc)}
    run.result = result
    run.finished_at = timezone.now()
    run.save(update_fields=["result", "finished_at"])
    logger.info("Stripe webhook recovery: %s", result)
    return result


def recover_enqueue_if_due(*, now: datetime | None = None) -> WebhookRecoverRun | None:
    """Queue this window's recovery unless some worker has already (or it is off:
    WEBHOOK_RECOVER_EVERY_HOURS = 0); the new run."""
    if settings.WEBHOOK_RECOVER_EVERY_HOURS <= 0:
        return None
    now = now or timezone.now()
    return enqueue_once(WebhookRecoverRun, webhook_recover_run, window=window_start(now), now=now)
