"""/healthz: whether this web process can serve, for a load balancer or an orchestrator.

200 when the database answers, else 503. The body also gives, for people and
monitoring, the age of each running worker's heartbeat, the task backlog, and the Stripe
webhook backlog (pending deliveries, the oldest one's age, those failed or given up); a
stopped worker or a backlog does not make the web unhealthy (workers have their own
check: their heartbeat's age, see README "Running at scale").

Cheap enough to be polled every few seconds: nine queries whatever the number
of rows (the ping, five for the task queue and workers, three for the webhooks).
"""

from __future__ import annotations

import logging

from django.db import DatabaseError, connection
from django.db.models import Count
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

logger = logging.getLogger(__name__)


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        logger.error("Health check: the database does not answer: %s", exc)
        return JsonResponse({"status": "unavailable", "database": "unreachable"}, status=503)
    from billing.models import WebhookDelivery
    from billing.webhook_queue import backlog
    from smartflow.workers import queue_state

    state = queue_state()
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
    return JsonResponse(
        {
            "status": "ok",
            "database": "ok",
            "backlog": state.backlog,
            "oldest_task_age_seconds": (
                round(state.oldest_age.total_seconds()) if state.oldest_age else None
            ),
            "webhooks": {
                "pending": pending,
                "oldest_pending_age_seconds": (
                    round((now - oldest).total_seconds()) if oldest else None
                ),
                "failed": stuck.get(WebhookDelivery.State.FAILED, 0),
                "gave_up": stuck.get(WebhookDelivery.State.GAVE_UP, 0),
            },
            "workers": [
                {
                    "id": beat.worker_id,
                    "host": beat.hostname,
                    "heartbeat_age_seconds": round((now - beat.last_seen_at).total_seconds()),
                }
                for beat in state.workers
            ],
        }
    )
