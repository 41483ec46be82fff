"""/healthz and /healthz/ready: is this service up, and is it doing its work.

- `/healthz` (liveness, for a load balancer): 200 `{"status": "ok"}` while the database
  answers, else 503 `{"status": "unavailable"}`. A stopped worker or a backlog does not
  make the web unhealthy: taking every web process out of rotation would not help.
- `/healthz/ready` (for monitoring and alerting): 200 `{"status": "ok"}`, or 503
  `{"status": "degraded"}` when no worker's heartbeat is live (younger than
  WORKER_STALE_SECONDS) or the oldest due task or due Stripe webhook delivery has waited
  longer than HEALTHZ_BACKLOG_MAX_SECONDS; 503 `unavailable` without the database. 503
  because an uptime monitor, like a load balancer, reads the status code.

Anyone gets only the status. Callers with a staff login, or with `Authorization: Bearer
<HEALTHZ_TOKEN>` (when that setting is set; a wrong token is a 401), also get the
details: each running worker's id, host and heartbeat age, the task backlog, the webhook
backlog (pending, oldest age, failed, given up) and, from /healthz/ready, what is
degraded.

Cheap enough to be polled every few seconds: anonymous /healthz is one query (the
ping); with details nine whatever the number of rows (the ping, five for the task queue
and workers, three for the webhooks); /healthz/ready one more (the oldest due delivery).
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import Count
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from billing.models import WebhookDelivery
from billing.webhook_queue import backlog, oldest_due
from smartflow.workers import QueueState, queue_state

logger = logging.getLogger(__name__)


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    detailed = _detailed(request)
    if detailed is None:
        return _unauthorised()
    if not _database_answers():
        return _unavailable(detailed)
    if not detailed:
        return JsonResponse({"status": "ok"})
    return JsonResponse({"status": "ok", "database": "ok", **_details(queue_state())})


@never_cache
@require_safe
def healthz_ready(request: HttpRequest) -> JsonResponse:
    detailed = _detailed(request)
    if detailed is None:
        return _unauthorised()
    if not _database_answers():
        return _unavailable(detailed)
    state = queue_state()
    problems = _problems(state, oldest_due())
    body: dict[str, Any] = {"status": "degraded" if problems else "ok"}
    if detailed:
        body |= {"problems": problems, "database": "ok", **_details(state)}
    return JsonResponse(body, status=503 if problems else 200)


def _detailed(request: HttpRequest) -> bool | None:
    """Whether the caller may see the details; None for a wrong bearer token (or any,
    with HEALTHZ_TOKEN unset), so that a monitor with a stale token fails loudly."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        expected = settings.HEALTHZ_TOKEN
        # Bytes: compare_digest refuses non-ASCII text, and a header may carry any.
        if expected and secrets.compare_digest(token.strip().encode(), expected.encode()):
            return True
        return None
    return bool(request.user.is_authenticated and request.user.is_staff)


def _unauthorised() -> JsonResponse:
    return JsonResponse({"status": "unauthorised"}, status=401)


def _database_answers() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        logger.error("Health check: the database does not answer: %s", exc)
        return False
    return True


def _unavailable(detailed: bool) -> JsonResponse:
    body = {"status": "unavailable"} | ({"database": "unreachable"} if detailed else {})
    return JsonResponse(body, status=503)


def _problems(state: QueueState, due_since: datetime | None) -> list[str]:
    now = timezone.now()
    stale = timedelta(seconds=settings.WORKER_STALE_SECONDS)
    most = timedelta(seconds=settings.HEALTHZ_BACKLOG_MAX_SECONDS)
    problems = []
    # The workers come newest heartbeat first: a live one, if any, is among them.
    if not any(now - beat.last_seen_at < stale for beat in state.workers):
        problems.append("no worker has a live heartbeat")
    if state.oldest_age is not None and state.oldest_age > most:
        problems.append(f"the oldest due task has waited {_seconds(state.oldest_age)} s")
    if due_since is not None and now - due_since > most:
        problems.append(f"the oldest due webhook delivery has waited {_seconds(now - due_since)} s")
    return problems


def _details(state: QueueState) -> dict[str, Any]:
    pending, oldest = backlog()
    stuck = dict(
        WebhookDelivery.objects.filter(
            state__in=[WebhookDelivery.State.FAILED, WebhookDelivery.State.GAVE_UP]
        )
        .order_by()
        .values_list("state")
        .annotate(n=Count("pk"))
    )
    now = timezone.now()
    return {
        "backlog": state.backlog,
        "oldest_task_age_seconds": _seconds(state.oldest_age) if state.oldest_age else None,
        "webhooks": {
            "pending": pending,
            "oldest_pending_age_seconds": _seconds(now - oldest) if oldest else None,
            "failed": stuck.get(WebhookDelivery.State.FAILED, 0),
            "gave_up": stuck.get(WebhookDelivery.State.GAVE_UP, 0),
        },
        "workers": [
            {
                "id": beat.worker_id,
                "host": beat.hostname,
                "heartbeat_age_seconds": _seconds(now - beat.last_seen_at),
            }
            for beat in state.workers
        ],
    }


def _seconds(age: timedelta) -> int:
    return round(age.total_seconds())
