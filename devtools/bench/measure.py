"""One batch job of `make bench`, measured in a fresh process of its own:

    python devtools/bench/measure.py reconcile [--tracemalloc]   # manage.py reconcile_plans
    python devtools/bench/measure.py reconcile_dry               # the same with --dry-run
    python devtools/bench/measure.py scan [--tracemalloc]        # its ceiling: the same walk over
                                                        # users, no work
    python devtools/bench/measure.py scan_models                 # the walk as model instances

Prints one JSON object: seconds (the job only, not Django's start-up), queries (every
SQL statement the job sent, counted by a connection execute wrapper), peak RSS (the
process's ru_maxrss, Django and the interpreter included; `rss_before_kib` is the same
figure just before the job started) and the job's own summary line. With --tracemalloc,
also the peak of the Python memory the job itself allocated (`python_peak_kib`), at the
cost of a slower job.
"""

from __future__ import annotations

import io
import json
import os
import resource
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def scan() -> str:
    """What any pass over every user costs: the same keyset-paginated batches of the same
    columns that reconcile_plans reads, and nothing else."""
    from accounts.models import User
    from billing.management.commands.reconcile_plans import BATCH, USER_COLUMNS

    seen = last_pk = 0
    while users := list(
        User.objects.filter(pk__gt=last_pk).order_by("pk").values_list(*USER_COLUMNS)[:BATCH]
    ):
        last_pk = users[-1][0]
        seen += len(users)
    return f"{seen} users read."


def scan_models() -> str:
    """The scan as the bench measured it before reconcile_plans read users as tuples:
    model instances of pk, email and plan (the ceiling issue 16's figures were against)."""
    from accounts.models import User
    from billing.management.commands.reconcile_plans import BATCH

    seen = last_pk = 0
    while users := list(
        User.objects.filter(pk__gt=last_pk).order_by("pk").only("pk", "email", "plan")[:BATCH]
    ):
        last_pk = users[-1].pk
        seen += len(users)
    return f"{seen} users read."


def reconcile(*, dry_run: bool = False) -> str:
    from django.core.management import call_command

    out = io.StringIO()
    # Progress goes to stderr every batch; the summary is the last line of stdout.
    call_command("reconcile_plans", dry_run=dry_run, stdout=out, stderr=io.StringIO())
    lines = out.getvalue().strip().splitlines()
    return lines[-1] if lines else ""


def reconcile_dry() -> str:
    """reconcile_plans --dry-run: the same reads, nothing fixed (the bench's warm-up)."""
    return reconcile(dry_run=True)


JOBS: dict[str, Callable[[], str]] = {
    "reconcile": reconcile,
    "reconcile_dry": reconcile_dry,
    "scan": scan,
    "scan_models": scan_models,
}


def main(argv: list[str]) -> int:
    traced = "--tracemalloc" in argv[2:]
    if len(argv) not in (2, 3) or argv[1] not in JOBS or argv[2:] not in ([], ["--tracemalloc"]):
        sys.stderr.write(__doc__ or "")
        return 2
    sys.path[0] = str(ROOT)  # not this script's directory: the project's root
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smartflow.settings")
    import django

    django.setup()
    from django.db import connection

    queries = 0

    def count(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        nonlocal queries
        queries += 1
        return execute(sql, params, many, context)

    connection.ensure_connection()  # connecting is start-up, not the job
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if traced:
        tracemalloc.start()
    with connection.execute_wrapper(count):
        started = time.perf_counter()
        summary = JOBS[argv[1]]()
        seconds = time.perf_counter() - started
    result: dict[str, Any] = {
        "seconds": seconds,
        "queries": queries,
        "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "rss_before_kib": rss_before,
        "summary": summary,
    }
    if traced:
        result["python_peak_kib"] = tracemalloc.get_traced_memory()[1] / 1024
        tracemalloc.stop()
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
