from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.autoreload import DJANGO_AUTORELOAD_ENV, file_changed, run_with_reloader
from django.utils.crypto import get_random_string
from django_tasks_db.management.commands.db_worker import valid_interval

from smartflow.workers import HeartbeatWorker


class Command(BaseCommand):
    help = (
        "Run background tasks (django-tasks-db's worker) with a heartbeat. At start and "
        "every minute it queues again the tasks claimed by workers whose heartbeat "
        "stopped (smartflow/workers.py), runs the onboarding outbox sweep, and queues the "
        "retention purge once every RETENTION_EVERY_HOURS (smartflow/retention.py). Runs up to "
        "WORKER_CONCURRENCY tasks at once. Run as many as you like, on any machine that "
        "reaches the database."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--queue-name",
            nargs="?",
            default="*",
            help="The queues to process (comma separated; * for all). Default: *",
        )
        parser.add_argument(
            "--interval",
            nargs="?",
            default=1,
            type=valid_interval,
            help="Seconds to wait between checks for new tasks. Default: 1",
        )
        parser.add_argument(
            "--reload",
            action="store_true",
            help="Restart on code changes, as runserver does (`make run`); the task in "
            "hand finishes first. Not for production.",
        )
        parser.add_argument(
            "--concurrency",
            type=int,
            default=settings.WORKER_CONCURRENCY,
            help="Tasks run at once, each in a thread with its own database connection "
            "(one on SQLite). Default: WORKER_CONCURRENCY (%(default)s)",
        )
        parser.add_argument(
            "--worker-id",
            nargs="?",
            default="",
            help="This worker's id (unique among the running ones). Default: random",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["concurrency"] < 1:
            raise CommandError("--concurrency must be 1 or more.")
        worker = HeartbeatWorker(
            concurrency=options["concurrency"],
            queue_names=options["queue_name"].split(","),
            interval=options["interval"],
            batch=False,
            backend_name="default",
            startup_delay=True,
            max_tasks=None,
            worker_id=options["worker_id"] or get_random_string(32),
            excluded_queue_names=[],
        )
        if not options["reload"]:
            worker.configure_signals()
            worker.run()
            return
        # As db_worker --reload: this process watches the code and runs the worker in a
        # child process, started again after each change; only the child handles signals.
        if os.environ.get(DJANGO_AUTORELOAD_ENV) == "true":
            worker.configure_signals()
            file_changed.connect(worker.stop_for_reload, weak=False)
        run_with_reloader(worker.run)
