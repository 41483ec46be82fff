"""`make bench`: SmartFlow under load, each figure beside its ceiling on the same server.

    .venv/bin/python devtools/bench/run.py [--database-url URL] [--out devtools/bench/RESULTS.md]

PostgreSQL, gunicorn (2 sync workers per core, as docs/operations.md tells operators), the worker
(`manage.py worker`, under `nice -n 10`) and the Stripe sandbox standing in for Stripe, DEBUG off.
The database (default smartflow_bench) is dropped and created afresh; the dev and test
databases are refused. Logs and working files go to devtools/bench/out/ (git-ignored). The load
generator (devtools/bench/load.py) is a separate process on the same machine.

Phases: reset and migrate; seed (crowd users with a plan history, new webhook customers
paying in the sandbox, renewal customers for the storm); one customer's events
acknowledged and processed in-process (statements, Stripe calls); start the server;
webhook acknowledgement (Stripe answering at once), gating, admin; restart with the
sandbox answering after 300 ms, acknowledgement again; the renewal storm (--storm-runs:
2 worker processes at the product's default WORKER_CONCURRENCY, 1 at the default, 2 and 1
running one task at a time), the sandbox also answering 429 beyond Stripe's live limit
(100/s) while every process paces itself to STRIPE_RATE_LIMIT (90/s,
BENCH_STRIPE_RATE_LIMIT); per run the Stripe requests per second reached (counted from
the workers' logs), the 429s and the acknowledgement's p50/p99 meanwhile; stop; then
reconcile_plans and its ceiling in fresh processes. Progress goes to stdout; the table
goes to --out. `--only storm` runs the storm alone (a partial report).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
OUT = HERE / "out"
PY = sys.executable
BIN = Path(PY).parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/smartflow_bench"
# Databases other people use on this server: never dropped, whatever the URL says.
PROTECTED = {"smartflow", "smartflow_rel", "smartflow_test", "postgres", "template0", "template1"}
HOST = "127.0.0.1"
CONCURRENCY = 8
STORM_CONCURRENCY = 16
STORM_RENEWALS = 2  # invoice.paid deliveries per storm customer
CEILING_EVENTS = 3000
SLOW_STRIPE_MS = 300
# Stripe's own rate limit in live mode (100 requests/s): during the renewal storm the
# sandbox answers 429 beyond it (STRIPE_SANDBOX_RATE_LIMIT), as Stripe would. (Not in the
# other phases: the bench's own seeding calls the sandbox in-process, unmeasured.)
SANDBOX_RATE_LIMIT = 100
# The deployment's own limit (STRIPE_RATE_LIMIT, billing/stripe_pace.py), shared by every
# process, in every phase. The product's default is half of Stripe's limit for the mode;
# the bench runs in test mode, whose half is far below a storm's need, so it states
# a deployment with the live limit to itself that keeps a tenth of it in hand for the
# dashboard and other clients. BENCH_STRIPE_RATE_LIMIT overrides it, to measure another.
STRIPE_RATE_LIMIT = float(os.environ.get("BENCH_STRIPE_RATE_LIMIT") or 90)
# The renewal storm's runs (--storm-runs): worker processes × tasks at once in each, "d"
# for the product's default WORKER_CONCURRENCY (not set in the workers' environment).
STORM_RUNS = "2xd,1xd,2x1,1x1"
# devtools/bench/README.md and the README ("Running at scale") tell operators "N about 2 per core";
# the bench runs what they are told to run, for the ceilings and the figures alike.
# (BENCH_GUNICORN_WORKERS and BENCH_WORKER_NICE override both, to measure the difference.)
GUNICORN_WORKERS = int(os.environ.get("BENCH_GUNICORN_WORKERS") or 2 * (os.cpu_count() or 1))
# docs/operations.md's advice for a machine that runs web and worker together: the worker at a
# lower CPU priority, so that Stripe's acknowledgements (timed by Stripe, retried when
# late) come before the processing (queued anyway). The bench's machine is one such.
WORKER_NICE = int(os.environ.get("BENCH_WORKER_NICE") or 10)
BENCH_SECRET_KEY = "bench-only-secret-key-7c1e9a3f5b2d4e6a8c0f1b3d5e7a9c2e4f6a8b0d2c4e"

_started = time.perf_counter()


def say(message: str) -> None:
    sys.stdout.write(f"[{time.perf_counter() - _started:6.1f}s] {message}\n")
    sys.stdout.flush()


# --- Environment and processes ----------------------------------------------------------


def server_env(*, database_url: str, port: int, latency_ms: int) -> dict[str, str]:
    """The environment of every SmartFlow process in the bench: production settings
    (DEBUG off) over plain HTTP on localhost, the sandbox on, and nothing that could
    reach a real provider even if the caller's environment or .env sets one."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("STRIPE_", "ANYMAIL_", "TWILIO_", "EMAIL_", "DJSTRIPE_"))
        # The product's default unless a storm run sets it (Server.workers_start).
        and k != "WORKER_CONCURRENCY"
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "smartflow.settings",
            # Never a developer's .env (make run's turns DEBUG on): only what is set here.
            "ENV_FILE": "/dev/null",
            "PYTHONUNBUFFERED": "1",
            "DATABASE_URL": database_url,
            "DEBUG": "false",
            "SECRET_KEY": BENCH_SECRET_KEY,
            # testserver: the bench's in-process Django test client counts queries.
            "ALLOWED_HOSTS": f"{HOST},localhost,testserver",
            "SITE_URL": f"http://{HOST}:{port}",
            "SECURE_SSL_REDIRECT": "false",
            "SESSION_COOKIE_SECURE": "false",
            "CSRF_COOKIE_SECURE": "false",
            "SECURE_HSTS_SECONDS": "0",
            "STRIPE_SANDBOX": "1",
            "STRIPE_SANDBOX_LATENCY_MS": str(latency_ms),
            "STRIPE_RATE_LIMIT": f"{STRIPE_RATE_LIMIT:g}",
            "STRIPE_TEST_SECRET_KEY": "",
            "STRIPE_LIVE_SECRET_KEY": "",
            "STRIPE_LIVE_MODE": "false",
            "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
            "ANYMAIL_ESP": "",
            "TWILIO_ACCOUNT_SID": "",
            "TWILIO_AUTH_TOKEN": "",
            "BENCH_VIEWS": "true",
            "ADMIN_URL": "admin",
            "LOG_LEVEL": "INFO",
        }
    )
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def database_reset(url: str) -> None:
    """Drop and create the bench database, refusing anything that is not a bench one."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if parts.scheme not in ("postgres", "postgresql") or not name:
        raise SystemExit(f"The bench needs a PostgreSQL URL with a database name, not {url!r}.")
    if name in PROTECTED or "bench" not in name:
        raise SystemExit(
            f"Refusing to drop database {name!r}: the bench only resets a database whose "
            "name contains 'bench' (default smartflow_bench)."
        )
    maintenance = parts._replace(path="/postgres").geturl()
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def manage(env: dict[str, str], *args: str) -> None:
    with (OUT / "manage.log").open("a") as log:
        subprocess.run(
            [PY, "manage.py", *args], cwd=ROOT, env=env, stdout=log, stderr=log, check=True
        )


@dataclass
class Server:
    """gunicorn and `workers` task workers (`manage.py worker`), started together."""

    env: dict[str, str]
    port: int
    name: str
    workers: int = 1
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self) -> None:
        gunicorn = [
            str(BIN / "gunicorn"),
            "smartflow.wsgi",
            "--workers",
            str(GUNICORN_WORKERS),
            "--bind",
            f"{HOST}:{self.port}",
        ]
        self.processes.append(_spawn(gunicorn, self.env, f"gunicorn-{self.name}.log"))
        self.workers_start(self.workers)
        deadline = time.monotonic() + 60
        while not self._answers():
            if any(p.poll() is not None for p in self.processes):
                raise SystemExit(f"The server did not start: see {OUT}/*-{self.name}.log")
            if time.monotonic() > deadline:
                raise SystemExit("The server did not answer within 60 s.")
            time.sleep(0.2)

    def workers_start(
        self, count: int, *, concurrency: int | None = None, log_name: str = ""
    ) -> None:
        """`count` task workers, each running `concurrency` tasks at once (None: the
        product's default WORKER_CONCURRENCY), logging to `log_name` in OUT."""
        env = dict(self.env)
        if concurrency is not None:
            env["WORKER_CONCURRENCY"] = str(concurrency)
        for n in range(count):
            command = [PY, "manage.py", "worker"]
            if WORKER_NICE:
                command = ["nice", "-n", str(WORKER_NICE), *command]
            command += ["--worker-id", f"bench-{self.name}-{n}"]
            self.processes.append(_spawn(command, env, log_name or f"worker-{self.name}.log"))

    def workers_stop(self) -> None:
        """Stop the task workers (each finishes its current task), not gunicorn."""
        workers = self.processes[1:]
        for process in workers:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in workers:
            _reap(process)
        del self.processes[1:]

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{HOST}:{self.port}/login/", timeout=2) as r:
                status: int = r.status
                return status == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            _reap(process)
        self.processes.clear()


def _spawn(command: list[str], env: dict[str, str], log_name: str) -> subprocess.Popen[bytes]:
    log = (OUT / log_name).open("ab")
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)


def _reap(process: subprocess.Popen[bytes]) -> None:
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def serving(env: dict[str, str], port: int, name: str, workers: int = 1) -> Iterator[Server]:
    server = Server(env=env, port=port, name=name, workers=workers)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def load(plan: dict[str, Any]) -> dict[str, Any]:
    """Run devtools/bench/load.py on `plan` in its own process; its JSON result."""
    path = OUT / "load-plan.json"
    path.write_text(json.dumps({"host": HOST, **plan}))
    done = subprocess.run(
        [PY, str(HERE / "load.py"), str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def alternate(plans: list[dict[str, Any]], rounds: int) -> list[dict[str, Any]]:
    """Run `plans` one after the other, `rounds` times over, and merge each plan's rounds:
    a figure and its ceiling then share whatever else the machine was doing."""
    from devtools.bench.load import merge

    runs: list[list[dict[str, Any]]] = [[] for _ in plans]
    for _ in range(rounds):
        for index, plan in enumerate(plans):
            runs[index].append(load(plan))
    return [_trim(merge(plan_runs)) for plan_runs in runs]


def _trim(result: dict[str, Any]) -> dict[str, Any]:
    result.pop("samples_s", None)  # every request's time: kept out of results.json
    return result


def measure(env: dict[str, str], job: str, *, tracemalloc: bool = False) -> dict[str, Any]:
    """Run devtools/bench/measure.py `job` in a fresh process; its JSON result."""
    quiet = {**env, "LOG_LEVEL": "WARNING"}
    done = subprocess.run(
        [PY, str(HERE / "measure.py"), job, *(["--tracemalloc"] if tracemalloc else [])],
        cwd=ROOT,
        env=quiet,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --- In-process helpers (after django.setup()) ------------------------------------------


def signed_in_client(email: str) -> Any:
    """A test client signed in as `email`, as after a real login: staff with their second
    factor passed (backoffice/staff_2fa.py), which production settings require."""
    from allauth.account.internal.flows.login import (
        _AUTHENTICATION_METHODS_USER_SESSION_KEY,
        AUTHENTICATION_METHODS_SESSION_KEY,
    )
    from django.test import Client

    from accounts.models import User

    user = User.objects.get(email=email)
    client = Client()
    # The backend a real login ends with (axes only guards authenticate()).
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    session = client.session
    session[AUTHENTICATION_METHODS_SESSION_KEY] = [
        {"method": "password", "at": time.time()},
        {"method": "mfa", "at": time.time(), "type": "totp"},
    ]
    session[_AUTHENTICATION_METHODS_USER_SESSION_KEY] = str(user.pk)
    session.save()
    return client


def session_cookie(email: str) -> str:
    """A signed-in session for `email`, stored in the database the server reads."""
    from django.conf import settings

    client = signed_in_client(email)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


@dataclass
class PageQueries:
    queries: int
    # PostgreSQL's own account of the page's slowest statement (EXPLAIN ANALYZE).
    slowest_ms: float
    slowest_jit_ms: float
    slowest_no_jit_ms: float
    slowest_sql: str


def explain(sql: str) -> dict[str, Any]:
    """PostgreSQL's EXPLAIN ANALYZE of `sql` (which it runs), as JSON."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")
        plan: dict[str, Any]
        (plan,) = cursor.fetchone()[0]
    return plan


def queries_per_page(email: str, paths: list[str]) -> dict[str, PageQueries]:
    """SQL statements each page costs, counted in-process through Django's test client,
    and where the slowest one spends its time."""
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    client = signed_in_client(email)
    pages: dict[str, PageQueries] = {}
    for path in paths:
        client.get(path)  # warm: the first request of a process loads templates and caches
        with CaptureQueriesContext(connection) as captured:
            response = client.get(path)
        if response.status_code != 200:
            raise SystemExit(f"{path} answered {response.status_code} in-process")
        slowest = max(captured.captured_queries, key=lambda q: float(q["time"]))["sql"]
        plan = explain(slowest)
        with transaction.atomic():
            # The same statement with PostgreSQL's JIT compiler off, for this one only.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL jit = off")
            plan_no_jit = explain(slowest)
        pages[path] = PageQueries(
            queries=len(captured.captured_queries),
            slowest_ms=plan["Planning Time"] + plan["Execution Time"],
            slowest_jit_ms=plan.get("JIT", {}).get("Timing", {}).get("Total", 0.0),
            slowest_no_jit_ms=plan_no_jit["Planning Time"] + plan_no_jit["Execution Time"],
            slowest_sql=slowest[:300],
        )
    return pages


@dataclass
class EventProfile:
    type: str
    # The acknowledgement (the endpoint's request): SQL statements by who sent them (see
    # _Attribution), Stripe calls, time.
    ack_queries: dict[str, int]
    ack_stripe_calls: list[str]
    ack_ms: float
    # The processing in the worker (`delivery_process`).
    queries: dict[str, int]
    # The worker's statements on dj-stripe's APIKey and Account tables: the lookups
    # dj-stripe repeats for every object it syncs.
    key_account_queries: int
    stripe_calls: list[str]
    ms: float


class _StripeCalls(logging.Handler):
    """Collects the sandbox client's debug line for each API request it answers."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.calls: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("Stripe sandbox: "):
            self.calls.append(record.getMessage().removeprefix("Stripe sandbox: "))


class _Attribution:
    """A connection execute wrapper that counts each SQL statement under the code that
    sent it: the innermost frame in dj-stripe, the sandbox or the app (Django's own and
    psycopg's frames are skipped); transaction control (BEGIN, SAVEPOINT...) apart."""

    TRANSACTION = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE SAVEPOINT")
    VENV, BENCH = str(ROOT / ".venv"), str(HERE)

    KEY_ACCOUNT = re.compile(r'(?:FROM|INTO|UPDATE)\s+"djstripe_(?:apikey|account)"', re.I)

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.key_account = 0

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        who = self._who(sql)
        self.counts[who] = self.counts.get(who, 0) + 1
        self.key_account += bool(self.KEY_ACCOUNT.search(sql))
        return execute(sql, params, many, context)

    def _who(self, sql: str) -> str:
        if sql.lstrip().upper().startswith(self.TRANSACTION):
            return "transaction"
        frame: FrameType | None = sys._getframe(2)
        while frame is not None:
            path = frame.f_code.co_filename
            if f"{os.sep}djstripe{os.sep}" in path:
                return "dj-stripe"
            if path.startswith(str(ROOT / "devtools" / "stripe_sandbox")):
                return "sandbox"
            if path.startswith(str(ROOT)) and not path.startswith((self.VENV, self.BENCH)):
                return "app"
            frame = frame.f_back
        return "django"


def webhook_profile(sequence: list[str], url_path: str, secret: str) -> list[EventProfile]:
    """Deliver one new customer's events in-process through the real endpoint (which
    acknowledges), then process each delivery as a worker does (`delivery_process`): the
    SQL statements and Stripe API calls of each step."""
    from django.db import connection
    from django.test import Client

    from billing import webhook_queue
    from billing.models import WebhookDelivery
    from devtools.bench.load import signature

    client_logger = logging.getLogger("devtools.stripe_sandbox.client")
    handler = _StripeCalls()
    level, propagate = client_logger.level, client_logger.propagate
    client_logger.addHandler(handler)
    client_logger.setLevel(logging.DEBUG)
    client_logger.propagate = False
    profiles = []
    try:
        client = Client()
        for text in sequence:
            payload = text.encode()
            event = json.loads(text)
            handler.calls = []
            ack = _Attribution()
            started = time.perf_counter()
            with connection.execute_wrapper(ack):
                response = client.post(
                    url_path,
                    data=payload,
                    content_type="application/json",
                    headers={"Stripe-Signature": signature(secret, payload, int(time.time()))},
                )
            ack_ms = (time.perf_counter() - started) * 1000
            if response.status_code != 200:
                raise SystemExit(f"Profiled webhook answered {response.status_code}")
            ack_calls = list(handler.calls)
            delivery = WebhookDelivery.objects.get(event_id=event["id"])
            handler.calls = []
            work = _Attribution()
            started = time.perf_counter()
            with connection.execute_wrapper(work):
                outcome = webhook_queue.delivery_process(delivery.pk)
            ms = (time.perf_counter() - started) * 1000
            if outcome != "processed":
                raise SystemExit(f"Profiled delivery of {event['type']}: {outcome}")
            profiles.append(
                EventProfile(
                    type=event["type"],
                    ack_queries=ack.counts,
                    ack_stripe_calls=ack_calls,
                    ack_ms=ack_ms,
                    queries=work.counts,
                    key_account_queries=work.key_account,
                    stripe_calls=list(handler.calls),
                    ms=ms,
                )
            )
    finally:
        client_logger.removeHandler(handler)
        client_logger.setLevel(level)
        client_logger.propagate = propagate
    return profiles


def worker_drain(timeout: float = 180) -> None:
    """Wait until the task worker has run every task that is due (webhook deliveries the
    app's own Stripe calls caused, onboarding messages)."""
    from django.db import connection
    from django_tasks import TaskResultStatus
    from django_tasks_db.models import DBTaskResult

    deadline = time.monotonic() + timeout
    while (
        DBTaskResult.objects.ready().exists()
        or DBTaskResult.objects.filter(status=TaskResultStatus.RUNNING).exists()
    ):
        if time.monotonic() > deadline:
            say("warning: the task worker still has due tasks; going on")
            break
        time.sleep(0.5)
    connection.close()


def phase_stats(since: datetime) -> dict[str, int]:
    """What the server and worker did since `since`, read from the database."""
    from djstripe.models import WebhookEventTrigger

    from billing.models import WebhookDelivery
    from devtools.stripe_sandbox.models import Delivery
    from onboarding.models import OnboardingMessage

    triggers = WebhookEventTrigger.objects.filter(created__gte=since)
    deliveries = Delivery.objects.filter(created_at__gte=since)
    received = WebhookDelivery.objects.filter(received_at__gte=since)
    return {
        "triggers": triggers.count(),
        "triggers_unprocessed": triggers.filter(processed=False).count(),
        "webhook_deliveries": received.count(),
        "webhook_deliveries_processed": received.filter(
            state=WebhookDelivery.State.PROCESSED
        ).count(),
        "worker_deliveries": deliveries.count(),
        "worker_deliveries_ok": deliveries.filter(state=Delivery.State.SUCCEEDED).count(),
        "onboarding_messages": OnboardingMessage.objects.filter(created_at__gte=since).count(),
    }


def events_renamed(sequences: list[list[str]], tag: str) -> list[list[str]]:
    """The same deliveries under new event ids (`<id>_<tag>`): each storm run's events are
    new to the app and processed in full (dj-stripe re-reads the invoice by its own id)."""
    renamed = []
    for sequence in sequences:
        events = [json.loads(text) for text in sequence]
        for event in events:
            event["id"] = f"{event['id']}_{tag}"
        renamed.append([json.dumps(event, indent=2) for event in events])
    return renamed


def storm_wait(tag: str, total: int, deadline: float) -> None:
    """Wait until the run's `total` deliveries are all out of pending, or `deadline`."""
    from django.db import connection

    from billing.models import WebhookDelivery

    runs = WebhookDelivery.objects.filter(event_id__endswith=f"_{tag}")
    while time.monotonic() < deadline:
        done = runs.exclude(state=WebhookDelivery.State.PENDING).count()
        if done >= total:
            break
        time.sleep(0.5)
    connection.close()


def storm_stats(tag: str, total: int) -> dict[str, Any]:
    """What a storm run's deliveries became: states, the time from the first
    acknowledgement to the last processing, and each one's acknowledgement-to-processed
    time (WebhookDelivery.processed_at - received_at)."""
    from django.db.models import Count, Q

    from billing.models import WebhookDelivery
    from devtools.bench.load import percentile

    runs = WebhookDelivery.objects.filter(event_id__endswith=f"_{tag}")
    # A 429 (or the pacing) that reached a handler as a failure: its error names it.
    rate_limited = runs.filter(
        Q(last_error__icontains="rate limit")
        | Q(last_error__icontains="ratelimit")
        | Q(last_error__icontains="429")
    ).count()
    states = dict(runs.values_list("state").annotate(n=Count("pk")).values_list("state", "n"))
    times = list(runs.values_list("received_at", "processed_at", "attempts"))
    first = min((r for r, _, _ in times), default=None)
    done = sorted(p for _, p, _ in times if p is not None)
    waits = sorted((p - r).total_seconds() for r, p, _ in times if p is not None)
    processed = len(done)
    span = (done[-1] - first).total_seconds() if done and first else float("nan")
    return {
        "total": total,
        "stored": len(times),
        "states": states,
        "processed": processed,
        "retried": sum(1 for _, _, attempts in times if attempts),
        "rate_limited": rate_limited,
        "drained": processed == total,
        "first_received": first,
        "last_processed": done[-1] if done else None,
        # First acknowledgement to the last event processed (so far, if not drained).
        "span_s": span,
        "per_second": processed / span if processed and span == span and span > 0 else 0.0,
        "wait_s": {
            "p50": percentile(waits, 50),
            "p99": percentile(waits, 99),
            "max": waits[-1] if waits else float("nan"),
        },
    }


# devtools/stripe_sandbox/client.py's line for each API request it answers, in
# smartflow/settings.py's log format ("%(asctime)s %(levelname)s %(name)s: %(message)s",
# asctime in TIME_ZONE, UTC).
_SANDBOX_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+ [\w.]+: "
    r"Stripe sandbox: [A-Z]+ \S+ -> (\d{3})"
)


def stripe_requests(log: Path, start: datetime | None, end: datetime | None) -> dict[str, Any]:
    """The Stripe (sandbox) requests the storm run's workers made, from their log (one
    line per request, whichever process made it): answered (not 429) per second over the
    drain `start`-`end`, mean and the busiest 1-second window; 429 answers over the whole
    run."""
    answered: list[float] = []
    refused = 0
    statuses: dict[str, int] = {}
    text = log.read_text(errors="replace") if log.exists() else ""
    for line in text.splitlines():
        match = _SANDBOX_LINE.match(line)
        if not match:
            continue
        stamp, status = match.groups()
        statuses[status] = statuses.get(status, 0) + 1
        if status == "429":
            refused += 1
            continue
        at = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").replace(tzinfo=UTC)
        if start and end and start <= at <= end:
            answered.append(at.timestamp())
    answered.sort()
    peak, low = 0, 0
    for high, second in enumerate(answered):
        while second - answered[low] >= 1.0:
            low += 1
        peak = max(peak, high - low + 1)
    span = (end - start).total_seconds() if start and end else 0.0
    return {
        "answered": len(answered),
        "statuses": statuses,
        "refused_429": refused,
        "mean_per_second": len(answered) / span if span > 0 else 0.0,
        "peak_per_second": peak,
    }


def storm_runs_parse(text: str) -> list[tuple[int, int | None]]:
    """--storm-runs "2xd,1xd,2x1,1x1": (processes, tasks at once each; None = the
    product's default)."""
    runs: list[tuple[int, int | None]] = []
    for item in text.split(","):
        if not item.strip():
            continue
        processes, _, concurrency = item.strip().lower().partition("x")
        if not processes.isdigit() or int(processes) < 1:
            raise ValueError(f"{item!r}: processes must be a positive number")
        if concurrency in ("d", "default"):
            runs.append((int(processes), None))
        elif concurrency.isdigit() and int(concurrency) >= 1:
            runs.append((int(processes), int(concurrency)))
        else:
            raise ValueError(f"{item!r}: write PROCESSESxCONCURRENCY, e.g. 2x8 or 2xd")
    if not runs:
        raise ValueError("no run")
    return runs


def setting_read(env: dict[str, str], name: str, default: int) -> int:
    """A setting as a process with `env` sees it (a worker's default WORKER_CONCURRENCY);
    `default` while the settings have none."""
    code = (
        "import django; django.setup(); from django.conf import settings; "
        f"print(getattr(settings, {name!r}, {default!r}))"
    )
    done = subprocess.run(
        [PY, "-c", code],
        cwd=ROOT,
        env={**env, "LOG_LEVEL": "WARNING"},
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout.strip().splitlines()[-1])


def workers_ready(prefix: str, count: int, timeout: float = 90) -> None:
    """Wait until `count` running workers whose id starts with `prefix` sent a heartbeat."""
    from django.db import connection

    from smartflow.models import WorkerHeartbeat

    deadline = time.monotonic() + timeout
    beating = WorkerHeartbeat.objects.filter(worker_id__startswith=prefix, stopped_at=None)
    while beating.count() < count and time.monotonic() < deadline:
        time.sleep(0.2)
    connection.close()


def tasks_drop() -> int:
    """Drop the tasks a capped storm run left queued (its unprocessed deliveries stay
    pending, with no task): the next run's workers must only do the next run's work."""
    from django.db import connection
    from django_tasks import TaskResultStatus
    from django_tasks_db.models import DBTaskResult

    dropped, _ = DBTaskResult.objects.filter(
        status__in=[TaskResultStatus.READY, TaskResultStatus.RUNNING]
    ).delete()
    connection.close()
    return dropped


def log_problems(name: str) -> list[str]:
    """ERROR/CRITICAL lines and tracebacks in a server's logs."""
    found = []
    for path in sorted(OUT.glob(f"*-{name}.log")):
        for line in path.read_text(errors="replace").splitlines():
            if " ERROR " in line or " CRITICAL " in line or line.startswith("Traceback"):
                found.append(f"{path.name}: {line[:200]}")
    return found


# --- The run ----------------------------------------------------------------------------


@dataclass
class Args:
    database_url: str
    out: Path
    users: int
    plan_changes: int
    webhook_customers: int
    slow_webhook_customers: int
    gating_seconds: float
    admin_requests: int
    storm_customers: int
    storm_runs: str
    storm_sample_s: float
    storm_timeout_s: float
    port: int
    only: str


def parser_build() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
        help="PostgreSQL database to DROP and recreate (its name must contain 'bench').",
    )
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--plan-changes", type=int, default=200_000)
    parser.add_argument(
        "--webhook-customers", type=int, default=300, help="new customers, Stripe instant"
    )
    parser.add_argument(
        "--slow-webhook-customers", type=int, default=40, help="new customers, Stripe 300 ms"
    )
    parser.add_argument("--gating-seconds", type=float, default=10.0)
    parser.add_argument("--admin-requests", type=int, default=7, help="timed per admin page")
    parser.add_argument(
        "--storm-customers",
        type=int,
        default=1000,
        help=f"renewal storm: customers, {STORM_RENEWALS} invoice.paid deliveries each",
    )
    parser.add_argument(
        "--storm-runs",
        default=STORM_RUNS,
        help="renewal storm: one run per PROCESSESxCONCURRENCY, `manage.py worker` "
        "processes × tasks at once in each (WORKER_CONCURRENCY; d: the product's default, "
        f"not set); the first runs to the end. Default: {STORM_RUNS}",
    )
    parser.add_argument(
        "--storm-sample-s",
        type=float,
        default=0.0,
        help="renewal storm: the runs after the first stop after this long (their rate is "
        "measured and the drain time extrapolated); 0 runs every one to the end",
    )
    parser.add_argument(
        "--storm-timeout-s", type=float, default=1800.0, help="renewal storm: a run's limit"
    )
    parser.add_argument("--port", type=int, default=0, help="default: a free port")
    parser.add_argument(
        "--only",
        choices=["webhooks", "admin", "speed", "storm"],
        default="",
        help="webhooks: only the acknowledgement figures (Stripe instant and +300 ms) and "
        "their ceilings, no crowd, storm, gating, admin or reconcile_plans; admin: only "
        "the admin change list and reconcile_plans figures over the crowd; either needs "
        "--out other than devtools/bench/RESULTS.md; speed: each piece of speed work against its "
        "plain version (SPEED_PLAIN), alternating in one run (devtools/bench/README.md); "
        "storm: only the renewal storm (its customers seeded, no crowd or other phase)",
    )
    return parser


def args_parse() -> Args:
    parser = parser_build()
    ns = parser.parse_args()
    # `--only storm` may refresh RESULTS.md's storm section in place (storm_section_write).
    if ns.only not in ("", "storm") and ns.out.resolve() == (HERE / "RESULTS.md").resolve():
        parser.error("--only writes a partial report: give it its own --out")
    try:
        storm_runs_parse(ns.storm_runs)
    except ValueError as error:
        parser.error(f"--storm-runs: {error}")
    return Args(**vars(ns))


def main() -> int:
    # Run as a script, this file's directory is first on sys.path; the project's root
    # belongs there instead (devtools.bench.* and the Django apps are imported from it).
    sys.path[0] = str(ROOT)
    args = args_parse()
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.log"):
        old.unlink()
    port = args.port or free_port()
    fast_env = server_env(database_url=args.database_url, port=port, latency_ms=0)
    slow_env = server_env(database_url=args.database_url, port=port, latency_ms=SLOW_STRIPE_MS)
    results: dict[str, Any] = {
        "args": {**vars(args), "out": str(args.out)},
        "port": port,
        "concurrency": CONCURRENCY,
        "gunicorn_workers": GUNICORN_WORKERS,
        "worker_nice": WORKER_NICE,
        "slow_stripe_ms": SLOW_STRIPE_MS,
        "storm_concurrency": STORM_CONCURRENCY,
        "loadavg_start": os.getloadavg()[0],
    }

    say(f"resetting {urlsplit(args.database_url).path.lstrip('/')} and migrating")
    database_reset(args.database_url)
    manage(fast_env, "migrate", "--noinput")
    manage(fast_env, "stripe_catalog")

    # This process now talks to the bench database itself (seeding, query counts).
    # Quieter than the servers: the sandbox logs every event the fixtures cause.
    os.environ.update({**fast_env, "LOG_LEVEL": "WARNING"})
    import django

    django.setup()
    from django.db import connection, connections
    from django.utils import timezone
    from djstripe.models import WebhookEndpoint

    from accounts.models import User
    from billing.management.commands.reconcile_plans import BATCH
    from billing.models import PlanChange
    from billing.overrides import override_grant
    from devtools.bench import seed
    from devtools.bench.cpu import CpuWatch

    results["reconcile_batch"] = BATCH
    watch = CpuWatch(urlsplit(args.database_url).path.lstrip("/"))
    results["foreign"] = {}

    @contextmanager
    def phase(name: str) -> Iterator[None]:
        """Record how much CPU the rest of the machine took during `name`."""
        watch.start()
        yield
        foreign = watch.stop()
        if foreign is not None:
            results["foreign"][name] = {**vars(foreign), "share": foreign.share}

    only_webhooks, only_admin = args.only == "webhooks", args.only == "admin"
    only_speed, only_storm = args.only == "speed", args.only == "storm"
    if only_admin or only_storm:
        args.webhook_customers = args.slow_webhook_customers = 0
    if only_speed:
        args.webhook_customers = 0
    say("seeding new webhook customers (checkout paid in the sandbox)")
    fast_sequences = seed.webhook_customers(args.webhook_customers, tag="fast", progress=say)
    slow_sequences = seed.webhook_customers(args.slow_webhook_customers, tag="slow", progress=say)
    warmup_sequence, profile_sequence = seed.webhook_customers(2, tag="profile", progress=say)
    if args.only and not only_storm:
        storm_sequences, renewal_sequence = [], []
    else:
        say(f"seeding {args.storm_customers:,} storm customers, renewed {STORM_RENEWALS}×")
        # One more, whose renewals are profiled in-process like the new customers' events.
        *storm_sequences, renewal_sequence = seed.renewal_customers(
            args.storm_customers + 1, renewals=STORM_RENEWALS, progress=say
        )
    superuser = User.objects.create_superuser("staff@bench.smartflow.test", None)
    gating_user = User.objects.create_user("launchpack@bench.smartflow.test", None)
    override_grant(
        user=gating_user,
        plan="launchpack",
        reason="bench: a LaunchPack customer for the gating figure",
        expires_at=None,
        notify=False,
        actor=superuser,
    )
    if only_webhooks or only_storm:
        args.users = args.plan_changes = 0
    say(f"seeding {args.users:,} users and {args.plan_changes:,} plan changes")
    crowd = seed.crowd_seed(users=args.users, plan_changes=args.plan_changes, progress=say)
    seed.vacuum()

    endpoint = WebhookEndpoint.objects.filter(livemode=False, status="enabled").earliest(
        "djstripe_id"
    )
    webhook_path = f"/stripe/webhook/{endpoint.djstripe_uuid}/"
    ceiling_path = f"/bench/webhook/{endpoint.djstripe_uuid}/"
    say("profiling one customer's webhooks in-process (ack, then the worker's processing)")
    # The first requests of a process load templates and caches: one customer unmeasured.
    webhook_profile(warmup_sequence, webhook_path, endpoint.secret)
    profile = webhook_profile(profile_sequence, webhook_path, endpoint.secret)
    renewal_profile = (
        webhook_profile(renewal_sequence, webhook_path, endpoint.secret) if renewal_sequence else []
    )
    discarded = seed.deliveries_discard()
    say(f"discarded {discarded} fixture deliveries: the load generator sends those events")
    # Their rows are dead tuples in the task and delivery tables, which every webhook
    # phase writes and the worker's claim reads: cleaned now, as autovacuum soon would.
    seed.vacuum()
    fast_file, slow_file = OUT / "payloads-fast.json", OUT / "payloads-slow.json"
    fast_file.write_text(json.dumps(fast_sequences))
    slow_file.write_text(json.dumps(slow_sequences))
    storm_runs = storm_runs_parse(args.storm_runs) if storm_sequences else []
    storm_files = {}
    for index, (processes, concurrency) in enumerate(storm_runs):
        tag = f"p{processes}c{concurrency or 'd'}r{index}"
        storm_files[tag] = OUT / f"payloads-storm-{tag}.json"
        storm_files[tag].write_text(json.dumps(events_renamed(storm_sequences, tag)))
    storm_total = sum(len(sequence) for sequence in storm_sequences)
    staff_cookie = session_cookie(superuser.email)
    gating_cookie = session_cookie(gating_user.email)
    results["data"] = {
        "crowd": vars(crowd),
        "profile": [vars(p) for p in profile],
        "profile_renewals": [vars(p) for p in renewal_profile],
    }
    connections.close_all()

    if only_speed:
        results["speed"] = speed_measure(
            results,
            slow_env=slow_env,
            fast_env=fast_env,
            port=port,
            secret=endpoint.secret,
            webhook_path=webhook_path,
            slow_sequences=slow_sequences,
            reconcile=args.users > 0,
            phase=phase,
        )
        from devtools.bench.report import speed_report_write

        return results_write(results, "results-speed.json", speed_report_write, args.out)

    def webhooks(server: Server, payloads: Path, count: int, label: str) -> dict[str, Any]:
        common = {"mode": "sequences", "port": port, "secret": endpoint.secret}
        common.update(payloads=str(payloads), concurrency=CONCURRENCY)
        # The ceiling is fast: the same sequences several times over, for a steady rate.
        repeat = max(1, -(-CEILING_EVENTS // (count * 3)))
        say(f"{label}: ceiling (signature-only view), {count * 3 * repeat} events")
        ceiling = _trim(load({**common, "path": ceiling_path, "repeat": repeat}))
        # The acknowledgement on its own, with no worker sharing the machine's cores (the
        # same events under other ids; their tasks are dropped, never processed): how
        # much of the figure's distance from the ceiling is the worker's CPU.
        server.workers_stop()
        alone_file = payloads.with_name(f"{payloads.stem}-alone.json")
        alone_file.write_text(json.dumps(events_renamed(json.loads(payloads.read_text()), "alone")))
        say(f"{label}: the webhook endpoint with no worker running, {count * 3} events")
        alone = _trim(load({**common, "path": webhook_path, "payloads": str(alone_file)}))
        tasks_drop()
        server.workers_start(1)
        since = timezone.now()
        say(f"{label}: the webhook endpoint (acknowledge), {count * 3} events")
        figure = _trim(load({**common, "path": webhook_path}))
        say(f"{label}: waiting for the worker to process them")
        drain_started = time.monotonic()
        worker_drain(timeout=args.storm_timeout_s)
        figure["drain_after_s"] = time.monotonic() - drain_started
        stats = phase_stats(since)
        return {"ceiling": ceiling, "figure": figure, "alone": alone, "stats": stats}

    # The storm's workers: Stripe +300 ms and, beyond Stripe's live limit, 429.
    storm_env = {**slow_env, "STRIPE_SANDBOX_RATE_LIMIT": str(SANDBOX_RATE_LIMIT)}

    def storm_measure() -> None:
        """The renewal storm: gunicorn alone, then each run's workers started just before
        its deliveries are sent (as in production, they process while the
        acknowledgements go on), stopped after it; a run has its own event ids
        (events_renamed) and its own worker log, from which its Stripe requests are
        counted (stripe_requests)."""
        default = setting_read(storm_env, "WORKER_CONCURRENCY", 1)
        results["storm_default_concurrency"] = default
        results["storm_stripe_rate_limit"] = STRIPE_RATE_LIMIT
        results["storm_sandbox_rate_limit"] = SANDBOX_RATE_LIMIT
        results["storm"] = []
        with (
            serving(storm_env, port, "storm", workers=0) as server,
            phase("renewal storm"),
        ):
            # A server that has been running has run today's daily jobs (smartflow/
            # windows.py): their windows are taken here and their tasks dropped with the
            # warm-up's below, never run. Else the first run's workers
            # queue the webhook recovery, which finds the seeding's events (the app never
            # received them: their deliveries were discarded above) and queues a thousand
            # of them in the middle of the storm.
            from billing.webhook_recover import recover_enqueue_if_due
            from smartflow.retention import retention_enqueue_if_due

            recover_enqueue_if_due()
            retention_enqueue_if_due()
            # A storm reaches a server that has been running, not one just started: as
            # before the other phases, every gunicorn worker first serves the path,
            # unmeasured (a cold worker's first requests took up to 0.5 s, the 1 % of a
            # storm's acknowledgements that made its p99). Other event ids, tasks dropped.
            warm_file = OUT / "payloads-storm-warm.json"
            warm_sequences = storm_sequences[: GUNICORN_WORKERS * 2]
            warm_file.write_text(json.dumps(events_renamed(warm_sequences, "warm")))
            load(
                {"mode": "sequences", "port": port, "secret": endpoint.secret}
                | {"payloads": str(warm_file), "concurrency": GUNICORN_WORKERS * 2}
                | {"path": webhook_path}
            )
            tasks_drop()
            for index, (tag, path) in enumerate(storm_files.items()):
                processes, concurrency = storm_runs[index]
                cap = args.storm_timeout_s
                if index and args.storm_sample_s:
                    cap = min(cap, args.storm_sample_s)
                each = concurrency or default
                say(
                    f"renewal storm, {processes} worker(s) × {each}"
                    f"{'' if concurrency else ' (default)'} tasks at once: {storm_total} "
                    f"invoice.paid at c={STORM_CONCURRENCY}, Stripe +{SLOW_STRIPE_MS} ms "
                    f"(limit {cap:g} s)"
                )
                log_name = f"worker-storm-{tag}.log"
                server.workers_start(processes, concurrency=concurrency, log_name=log_name)
                # Workers up before the first delivery: their start-up (Django, a first
                # heartbeat) is not part of the storm.
                workers_ready("bench-storm-", processes)
                started = time.monotonic()
                ack = _trim(
                    load(
                        {"mode": "sequences", "port": port, "secret": endpoint.secret}
                        | {"payloads": str(path), "concurrency": STORM_CONCURRENCY}
                        | {"path": webhook_path}
                    )
                )
                storm_wait(tag, storm_total, started + cap)
                server.workers_stop()
                run: dict[str, Any] = {
                    "processes": processes,
                    "concurrency": each,
                    "concurrency_default": concurrency is None,
                    "cap_s": cap,
                    "timeout_s": args.storm_timeout_s,
                }
                run |= {"ack": ack, **storm_stats(tag, storm_total)}
                run["stripe"] = stripe_requests(
                    OUT / log_name, run.pop("first_received"), run.pop("last_processed")
                )
                run["tasks_dropped"] = tasks_drop()
                connection.close()
                say(
                    f"  {run['processed']}/{storm_total} processed in {run['span_s']:.0f} s "
                    f"({run['per_second']:.1f}/s); Stripe {run['stripe']['mean_per_second']:.1f}"
                    f" req/s, peak {run['stripe']['peak_per_second']}/s, "
                    f"{run['stripe']['refused_429']} × 429"
                )
                results["storm"].append(run)
        results["problems_storm"] = log_problems("storm*")

    if only_storm:
        storm_measure()
        from devtools.bench.report import storm_report_write, storm_section_write

        results_main = args.out.resolve() == (HERE / "RESULTS.md").resolve()
        write = storm_section_write if results_main else storm_report_write
        return results_write(results, "results-storm.json", write, args.out)

    def warm(cookie: str, paths: list[str]) -> None:
        # Unmeasured requests, enough for every gunicorn worker to have served each path.
        for path in paths:
            load(
                {"mode": "get", "port": port, "path": path, "cookie": cookie}
                | {"concurrency": GUNICORN_WORKERS * 2, "count": GUNICORN_WORKERS * 4}
            )

    # The admin shows 100 users a page; the middle one makes the database skip half.
    page_count = -(-args.users // 100)
    middle = max(1, page_count // 2)
    results["admin_middle_page"] = middle
    admin_pages = [
        ("first page", "", ""),
        ("filter: plan LaunchPack", "?plan__exact=launchpack", "?plan__exact=launchpack"),
        ("filter: billing status active", "?billing_status=active", ""),
        ("search: email fragment", "?q=customer04242", "?q=customer04242"),
        (f"page {middle:,} of {page_count:,}", f"?p={middle}", f"?p={middle}"),
    ]
    real_admin, bare_admin = "/admin/accounts/user/", "/bench/admin/accounts/user/"

    say(f"starting gunicorn ({GUNICORN_WORKERS} workers) and a task worker on :{port}")
    with serving(fast_env, port, "fast") as server:
        if not only_admin:
            with phase("webhooks, Stripe instant"):
                results["webhooks_fast"] = webhooks(
                    server, fast_file, args.webhook_customers, "webhooks"
                )

        if not args.only:
            gating_paths = ["/bench/constant/", "/feature/ai_concierge/"]
            warm(gating_cookie, gating_paths)
            say(f"gating: {' and '.join(gating_paths)}, {args.gating_seconds:g} s each")
            rounds = 5
            with phase("gating"):
                gating = alternate(
                    [
                        {"mode": "get", "port": port, "path": path, "cookie": gating_cookie}
                        | {"concurrency": CONCURRENCY, "seconds": args.gating_seconds / rounds}
                        for path in gating_paths
                    ],
                    rounds=rounds,
                )
            results["gating"] = dict(zip(gating_paths, gating, strict=True))

        if not only_webhooks:
            say("admin: user change list pages")
            pages = []
            with phase("admin"):
                for label, real_query, bare_query in admin_pages:
                    real, bare = real_admin + real_query, bare_admin + bare_query
                    warm(staff_cookie, [real, bare])
                    bare_http, real_http = alternate(
                        [
                            {"mode": "get", "port": port, "path": path, "cookie": staff_cookie}
                            | {"concurrency": 1, "count": 1}
                            for path in (bare, real)
                        ],
                        rounds=args.admin_requests,
                    )
                    queries = queries_per_page(superuser.email, [bare, real])
                    connections.close_all()
                    pages.append(
                        {
                            "label": label,
                            "real": real,
                            "bare": bare,
                            "real_http": real_http,
                            "bare_http": bare_http,
                            "real_queries": vars(queries[real]),
                            "bare_queries": vars(queries[bare]),
                        }
                    )
            results["admin"] = pages
            results["admin_counts"] = {
                "users": User.objects.count(),
                "plan_changes": PlanChange.objects.count(),
            }
            connections.close_all()
    results["problems_fast"] = log_problems("fast")

    if only_admin:
        reconcile_measure(fast_env, results, phase)
        from devtools.bench.report import report_admin_write

        return results_write(results, "results-admin.json", report_admin_write, args.out)

    say(f"restarting with the Stripe sandbox answering after {SLOW_STRIPE_MS} ms")
    with (
        serving(slow_env, port, "slow") as server,
        phase(f"webhooks, Stripe +{SLOW_STRIPE_MS} ms"),
    ):
        results["webhooks_slow"] = webhooks(
            server, slow_file, args.slow_webhook_customers, f"webhooks, Stripe +{SLOW_STRIPE_MS} ms"
        )
    results["problems_slow"] = log_problems("slow")
    connection.close()
    if only_webhooks:
        from devtools.bench.report import webhooks_report_write

        return results_write(results, "results-webhooks.json", webhooks_report_write, args.out)

    storm_measure()

    reconcile_measure(fast_env, results, phase)

    from devtools.bench.report import report_write

    return results_write(results, "results.json", report_write, args.out)


# --- Speed work against its plain version (--only speed) --------------------------------

SPEED_ROUNDS = 3  # rounds of each version, alternating
SPEED_REPEAT = 5  # an acknowledgement round sends the slow customers' events this many times


def speed_measure(
    results: dict[str, Any],
    *,
    slow_env: dict[str, str],
    fast_env: dict[str, str],
    port: int,
    secret: str,
    webhook_path: str,
    slow_sequences: list[list[str]],
    reconcile: bool,
    phase: Callable[[str], AbstractContextManager[None]],
) -> dict[str, Any]:
    """Each piece of speed work against its plain version (SPEED_PLAIN, smartflow/
    settings.py), alternating round by round under the same load in this one run:

    - the acknowledgement: c=8, Stripe +300 ms, the worker running (the figure of the
      main run), gunicorn started afresh for each round with or without SPEED_PLAIN=ack;
    - reconcile_plans (unless `reconcile` is off): a pass finding nothing to fix, in
      fresh processes, with and without gc.freeze(), round by round; medians."""
    out: dict[str, Any] = {"rounds": SPEED_ROUNDS}
    # The acknowledgement.
    # (The one statement unprepared: DATABASE_PREPARED_STATEMENTS off, as behind a pooler.)
    ack_envs = {
        "plain": {"SPEED_PLAIN": "ack"},
        "unprepared": {"DATABASE_PREPARED_STATEMENTS": "false"},
        "prepared": {},
    }
    ack: dict[str, list[dict[str, Any]]] = {version: [] for version in ack_envs}
    with phase("speed: acknowledgement"):
        for round_ in range(SPEED_ROUNDS):
            for version, runs in ack.items():
                env = {**slow_env, **ack_envs[version]}
                tag = f"{version}{round_}"
                payloads = OUT / f"payloads-speed-{tag}.json"
                sequences = [
                    sequence
                    for k in range(SPEED_REPEAT)
                    for sequence in events_renamed(slow_sequences, f"{tag}x{k}")
                ]
                payloads.write_text(json.dumps(sequences))
                warm = OUT / f"payloads-speed-{tag}-warm.json"
                warm.write_text(json.dumps(events_renamed(slow_sequences[:8], f"{tag}w")))
                with serving(env, port, f"speed-{tag}"):
                    common = {"mode": "sequences", "port": port, "secret": secret}
                    common |= {"concurrency": CONCURRENCY, "path": webhook_path}
                    load({**common, "payloads": str(warm)})  # unmeasured: each worker warm
                    say(f"speed: acknowledgement, {version}, round {round_ + 1}")
                    runs.append(load({**common, "payloads": str(payloads)}))
                tasks_drop()  # the worker's backlog: the next round starts with none
    from devtools.bench.load import merge

    out["ack"] = {version: _trim(merge(runs)) for version, runs in ack.items()}
    out["ack_rounds"] = {
        version: [{"per_second": r["per_second"], "p99": r["ms"]["p99"]} for r in runs]
        for version, runs in ack.items()
    }
    results["problems_speed"] = log_problems("speed-*")
    if not reconcile:
        return out
    say("speed: reconcile_plans, a dry run to warm the caches and one to fix the drift")
    measure(fast_env, "reconcile_dry")
    measure(fast_env, "reconcile")
    versions = {"plain": "gc_freeze", "gc_freeze": ""}
    passes: dict[str, list[dict[str, Any]]] = {version: [] for version in versions}
    with phase("speed: reconcile_plans"):
        for round_ in range(SPEED_ROUNDS):
            for version, plain in versions.items():
                say(f"speed: reconcile_plans, {version}, round {round_ + 1}")
                passes[version].append(measure({**fast_env, "SPEED_PLAIN": plain}, "reconcile"))
    out["reconcile"] = {}
    for version, measured in passes.items():
        ordered = sorted(measured, key=lambda run: run["seconds"])
        out["reconcile"][version] = {
            **ordered[len(ordered) // 2],
            "rounds_s": [run["seconds"] for run in measured],
        }
    return out


def results_write(
    results: dict[str, Any],
    raw_name: str,
    report: Callable[[dict[str, Any], Path], None],
    out: Path,
) -> int:
    """The run's end, whichever report it writes: the machine, the time taken, the raw
    results in devtools/bench/out/ and the report at `out`."""
    results["machine"] = machine()
    results["elapsed_s"] = time.perf_counter() - _started
    (OUT / raw_name).write_text(json.dumps(results, indent=2, default=str))
    report(results, out)
    say(f"wrote {out} in {results['elapsed_s']:.0f} s")
    return 0


RECONCILE_ROUNDS = 3


def reconcile_measure(
    env: dict[str, str],
    results: dict[str, Any],
    phase: Callable[[str], AbstractContextManager[None]],
) -> None:
    """reconcile_plans and its ceilings, each in a fresh process, after the servers
    stopped. First one unmeasured dry run, which reads every table the job and the scans
    read: the figures compare work, not which of them met the tables first on disk
    (this machine's page cache is reclaimed while it idles). Then the scans and the
    pass with nothing left to fix alternate, RECONCILE_ROUNDS each, and each figure is
    its median round; the pass that fixes the seeded drift can only run once."""
    say("reconcile_plans: a dry run to warm the caches, then the ceilings and the command")
    with phase("reconcile_plans"):
        results["reconcile_warmup"] = measure(env, "reconcile_dry")
        runs: dict[str, list[dict[str, Any]]] = {"scan": [], "scan_models": []}
        for job in runs:
            runs[job].append(measure(env, job))
        # The first pass fixes the seeded drift; the next ones find none (a nightly run).
        results["reconcile"] = measure(env, "reconcile")
        runs["reconcile_clean"] = []
        for round_ in range(RECONCILE_ROUNDS):
            for job in runs:
                if job != "reconcile_clean" and round_ == 0:
                    continue  # (measured once above, before the fixing pass)
                runs[job].append(measure(env, "reconcile" if job == "reconcile_clean" else job))
        for key, measured in runs.items():
            ordered = sorted(measured, key=lambda run: run["seconds"])
            results[key] = {
                **ordered[len(ordered) // 2],
                "rounds_s": [run["seconds"] for run in measured],
            }
    # tracemalloc slows the job down, so memory is a pass of its own (in which
    # reconcile_plans finds nothing left to fix).
    say("reconcile_plans and its ceiling again, under tracemalloc")
    results["scan_memory"] = measure(env, "scan", tracemalloc=True)
    results["reconcile_memory"] = measure(env, "reconcile", tracemalloc=True)


def machine() -> dict[str, Any]:
    from django.db import connection

    meminfo = Path("/proc/meminfo").read_text()
    mem_kib = int(
        next(line for line in meminfo.splitlines() if line.startswith("MemTotal")).split()[1]
    )
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in cpuinfo.splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        (pg_version,) = cursor.fetchone()
    connection.close()

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout

    # Porcelain lines are "XY path": the status columns may start with a space.
    changed = [line for line in git("status", "--porcelain").splitlines() if line.strip()]
    return {
        "cores": os.cpu_count(),
        "memory_gib": mem_kib / 1024 / 1024,
        "cpu": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": pg_version,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git("rev-parse", "--short", "HEAD").strip(),
        # What the run measured beyond the commit: paths changed or new in the tree.
        "changed": sorted(line[3:] for line in changed),
    }


if __name__ == "__main__":
    sys.exit(main())
