"""/healthz: whether this web process can serve, for a load balancer or an orchestrator.

200 when the database answers, else 503. The body also gives the age of each running
worker's heartbeat and the task backlog, for people; a stopped worker does not make the
web unhealthy (it has its own check: its heartbeat's age, see README "Running at scale").
"""

from __future__ import annotations

import logging

from django.db import DatabaseError, connection
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
    from smartflow.workers import queue_state

    state = queue_state()
    now = timezone.now()
    return JsonResponse(
        {
            "status": "ok",
            "database": "ok",
            "backlog": state.backlog,
            "oldest_task_age_seconds": (
                round(state.oldest_age.total_seconds()) if state.oldest_age else None
            ),
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
