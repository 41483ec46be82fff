from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Count, Min, Q, QuerySet
from django.utils import timezone

from billing.models import WebhookDelivery
from billing.webhook_queue import process_again, process_due
from billing.webhook_recover import RecoverError, recover, since_parse

BATCH = 500  # deliveries queued again per transaction


class Command(BaseCommand):
    help = (
        "The Stripe webhook backlog, for operators: prints pending deliveries (due now, "
        "waiting for a retry), failed, gave up and the oldest pending one's age. "
        "--retry-now: every delivery waiting for its backoff is due now (after an outage: "
        "Stripe is back, do not wait for the retry). --failed: failed and gave-up "
        "deliveries are queued again (after fixing their cause). --process: process the "
        "due deliveries here, in the foreground, for when no worker runs. --recover "
        "--since 2d: list Stripe's events of the last 2 days (the Events API, which keeps "
        "30) and queue every one of the types we handle that no webhook brought (the "
        "workers also do this daily, WEBHOOK_RECOVER_EVERY_HOURS); --dry-run only lists "
        "them. Safe to run twice: a delivery is processed once, whatever queued it, and "
        "an event is recovered once."
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
        parser.add_argument(
            "--recover",
            action="store_true",
            help="Queue the events Stripe lists (--since) that no webhook brought.",
        )
        parser.add_argument(
            "--since",
            help="With --recover: how far back, e.g. 2d, 12h, 30m; at most 30d (default 2d).",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="With --recover: list the missing events, queue nothing.",
        )

    def handle(
        self,
        *args: Any,
        retry_now: bool,
        failed: bool,
        process: bool,
        recover: bool,
        since: str | None,
        dry_run: bool,
        **options: Any,
    ) -> None:
        if recover:
            # Before --process: what it queues is then processed here too.
            since = "2d" if since is None else since
            self._recover(since, dry_run=dry_run, verbosity=options.get("verbosity", 1))
        elif dry_run or since is not None:
            raise CommandError("--since and --dry-run go with --recover.")
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

    def _recover(self, since_text: str, *, dry_run: bool, verbosity: int) -> None:
        try:
            found = recover(since=since_parse(since_text), dry_run=dry_run)
        except RecoverError as exc:
            raise CommandError(str(exc)) from exc
        verb = "would be queued (dry run)" if dry_run else "queued"
        self.stdout.write(
            f"Recovered from Stripe's events of the last {since_text.strip()}: {found.listed} "
            f"listed, {found.already} received already, {found.queued} never received, "
            f"{verb}."
        )
        if verbosity >= 2:
            for event_id in found.queued_ids:
                self.stdout.write(f"  {event_id}")

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
