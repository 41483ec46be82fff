from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.db.models import Count, Min, Q, QuerySet
from django.utils import timezone

from billing.models import WebhookDelivery
from billing.webhook_queue import process_again, process_due

BATCH = 500  # deliveries queued again per transaction


class Command(BaseCommand):
    help = (
        "The Stripe webhook backlog, for operators: prints pending deliveries (due now, "
        "waiting for a retry), failed, gave up and the oldest pending one's age. "
        "--retry-now: every delivery waiting for its backoff is due now (after an outage: "
        "Stripe is back, do not wait for the retry). --failed: failed and gave-up "
        "deliveries are queued again (after fixing their cause). --process: process the "
        "due deliveries here, in the foreground, for when no worker runs. Safe to run "
        "twice: a delivery is processed once, whatever queued it."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--retry-now", action="store_true", help="Make pending deliveries due now."
        )
        parser.add_argument(
            "--failed", action="store_true", help="Queue failed and gave-up deliveries again."
        )
        parser.add_argument(
            "--process", action="store_true", help="Process due deliveries here (no worker)."
        )

    def handle(
        self, *args: Any, retry_now: bool, failed: bool, process: bool, **options: Any
    ) -> None:
        pending = WebhookDelivery.objects.filter(state=WebhookDelivery.State.PENDING)
        if retry_now:
            # Due ones already have their task in the queue; only the waiting need one.
            waiting = pending.filter(next_attempt_at__gt=timezone.now())
            self.stdout.write(f"Due now: {self._requeue(waiting)} pending deliveries.")
        if failed:
            stuck = WebhookDelivery.objects.filter(
                state__in=[WebhookDelivery.State.FAILED, WebhookDelivery.State.GAVE_UP]
            )
            self.stdout.write(f"Queued again: {self._requeue(stuck)} failed or gave-up.")
        if process:
            self.stdout.write(f"Processed here: {process_due()} deliveries.")
        self.stdout.write(backlog_summary())

    def _requeue(self, deliveries: QuerySet[WebhookDelivery]) -> int:
        total = deliveries.count()
        done = last = 0
        # In batches after the last primary key: a delivery a worker sends back to its
        # backoff meanwhile is not picked up again.
        while batch := list(deliveries.filter(pk__gt=last).order_by("pk")[:BATCH]):
            done += process_again(batch)
            last = batch[-1].pk
            if total > BATCH:
                self.stdout.write(f"  {done} / {total}")
        return done


def backlog_summary() -> str:
    """One line: the backlog as the workers see it (one query)."""
    now = timezone.now()
    pending = Q(state=WebhookDelivery.State.PENDING)
    waiting = pending & Q(next_attempt_at__gt=now)
    counts = WebhookDelivery.objects.aggregate(
        pending=Count("pk", filter=pending),
        waiting=Count("pk", filter=waiting),
        failed=Count("pk", filter=Q(state=WebhookDelivery.State.FAILED)),
        gave_up=Count("pk", filter=Q(state=WebhookDelivery.State.GAVE_UP)),
        oldest=Min("received_at", filter=pending),
    )
    oldest = counts["oldest"]
    age = f"{int((now - oldest).total_seconds())} s" if oldest else "none"
    return (
        f"Stripe webhooks: {counts['pending']} pending ({counts['pending'] - counts['waiting']} "
        f"due now, {counts['waiting']} waiting for a retry), {counts['failed']} failed, "
        f"{counts['gave_up']} gave up; oldest pending: {age}."
    )
