"""`make bench`: SmartFlow under load, each figure beside its ceiling on the same server.

    .venv/bin/python bench/run.py [--database-url URL] [--out bench/RESULTS.md]

PostgreSQL, gunicorn (2 sync workers, as in production), the task worker
(`manage.py db_worker`) and the Stripe sandbox standing in for Stripe, with DEBUG off.
The database (default smartflow_bench) is dropped and created afresh; the dev and test
databases are refused. Logs and working files go to bench/out/ (git-ignored). The load
generator (bench/load.py) is a separate process on the same machine.

Phases: reset and migrate; seed (crowd users with a plan history, new webhook customers
paying in the sandbox); start the server; webhooks (Stripe answering at once), gating,
admin; restart with the sandbox answering after 300 ms, webhooks again; stop; then
reconcile_plans and its ceiling in fresh processes. Progress goes to stdout; the table
goes to --out.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
PY = sys.executable
BIN = Path(PY).parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/smartflow_bench"
# Databases other people use on this server: never dropped, whatever the URL says.
PROTECTED = {"smartflow", "smartflow_rel", "smartflow_test", "postgres", "template0", "template1"}
HOST = "127.0.0.1"
CONCURRENCY = 8
CEILING_EVENTS = 3000
SLOW_STRIPE_MS = 300
GUNICORN_WORKERS = 2
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
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "smartflow.settings",
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
    """gunicorn and the task worker, started together."""

    env: dict[str, str]
    port: int
    name: str
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
        worker = [PY, "manage.py", "db_worker"]
        for label, command in (("gunicorn", gunicorn), ("worker", worker)):
            log = (OUT / f"{label}-{self.name}.log").open("ab")
            self.processes.append(
                subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log, stderr=log)
            )
        deadline = time.monotonic() + 60
        while not self._answers():
            if any(p.poll() is not None for p in self.processes):
                raise SystemExit(f"The server did not start: see {OUT}/*-{self.name}.log")
            if time.monotonic() > deadline:
                raise SystemExit("The server did not answer within 60 s.")
            time.sleep(0.2)

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{HOST}:{self.port}/login/", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()


@contextmanager
def serving(env: dict[str, str], port: int, name: str) -> Iterator[Server]:
    server = Server(env=env, port=port, name=name)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def load(plan: dict[str, Any]) -> dict[str, Any]:
    """Run bench/load.py on `plan` in its own process; its JSON result."""
    path = OUT / "load-plan.json"
    path.write_text(json.dumps({"host": HOST, **plan}))
    done = subprocess.run(
        [PY, str(ROOT / "bench" / "load.py"), str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def alternate(plans: list[dict[str, Any]], rounds: int) -> list[dict[str, Any]]:
    """Run `plans` one after the other, `rounds` times over, and merge each plan's rounds:
    a figure and its ceiling then share whatever else the machine was doing."""
    from bench.load import merge

    runs: list[list[dict[str, Any]]] = [[] for _ in plans]
    for _ in range(rounds):
        for index, plan in enumerate(plans):
            runs[index].append(load(plan))
    return [_trim(merge(plan_runs)) for plan_runs in runs]


def _trim(result: dict[str, Any]) -> dict[str, Any]:
    result.pop("samples_s", None)  # every request's time: kept out of results.json
    return result


def measure(env: dict[str, str], job: str, *, tracemalloc: bool = False) -> dict[str, Any]:
    """Run bench/measure.py `job` in a fresh process; its JSON result."""
    quiet = {**env, "LOG_LEVEL": "WARNING"}
    done = subprocess.run(
        [PY, str(ROOT / "bench" / "measure.py"), job, *(["--tracemalloc"] if tracemalloc else [])],
        cwd=ROOT,
        env=quiet,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- In-process helpers (after django.setup()) ------------------------------------------


def session_cookie(email: str) -> str:
    """A signed-in session for `email`, stored in the database the server reads."""
    from django.conf import settings
    from django.test import Client

    from accounts.models import User

    client = Client()
    # The backend a real login ends with (axes only guards authenticate()).
    client.force_login(
        User.objects.get(email=email), backend="django.contrib.auth.backends.ModelBackend"
    )
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
        (plan,) = cursor.fetchone()[0]
    return plan


def queries_per_page(email: str, paths: list[str]) -> dict[str, PageQueries]:
    """SQL statements each page costs, counted in-process through Django's test client,
    and where the slowest one spends its time."""
    from django.db import connection, transaction
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from accounts.models import User

    client = Client()
    client.force_login(
        User.objects.get(email=email), backend="django.contrib.auth.backends.ModelBackend"
    )
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
    # SQL statements by who sent them (see _Attribution).
    queries: dict[str, int]
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
    VENV, BENCH = str(ROOT / ".venv"), str(ROOT / "bench")

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        who = self._who(sql)
        self.counts[who] = self.counts.get(who, 0) + 1
        return execute(sql, params, many, context)

    def _who(self, sql: str) -> str:
        if sql.lstrip().upper().startswith(self.TRANSACTION):
            return "transaction"
        frame = sys._getframe(2)
        while frame is not None:
            path = frame.f_code.co_filename
            if f"{os.sep}djstripe{os.sep}" in path:
                return "dj-stripe"
            if path.startswith(str(ROOT / "billing" / "sandbox")):
                return "sandbox"
            if path.startswith(str(ROOT)) and not path.startswith((self.VENV, self.BENCH)):
                return "app"
            frame = frame.f_back
        return "django"


def webhook_profile(sequence: list[str], url_path: str, secret: str) -> list[EventProfile]:
    """Deliver one new customer's events in-process, through dj-stripe's real endpoint:
    the SQL statements and Stripe API calls each one costs."""
    from django.db import connection
    from django.test import Client

    from bench.load import signature

    client_logger = logging.getLogger("stripe_sandbox.client")
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
            handler.calls = []
            attribution = _Attribution()
            started = time.perf_counter()
            with connection.execute_wrapper(attribution):
                response = client.post(
                    url_path,
                    data=payload,
                    content_type="application/json",
                    headers={"Stripe-Signature": signature(secret, payload, int(time.time()))},
                )
            ms = (time.perf_counter() - started) * 1000
            if response.status_code != 200:
                raise SystemExit(f"Profiled webhook answered {response.status_code}")
            profiles.append(
                EventProfile(
                    type=json.loads(text)["type"],
                    queries=attribution.counts,
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

    from onboarding.models import OnboardingMessage
    from stripe_sandbox.models import Delivery

    triggers = WebhookEventTrigger.objects.filter(created__gte=since)
    deliveries = Delivery.objects.filter(created_at__gte=since)
    return {
        "triggers": triggers.count(),
        "triggers_unprocessed": triggers.filter(processed=False).count(),
        "worker_deliveries": deliveries.count(),
        "worker_deliveries_ok": deliveries.filter(state=Delivery.State.SUCCEEDED).count(),
        "onboarding_messages": OnboardingMessage.objects.filter(created_at__gte=since).count(),
    }


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
    port: int


def args_parse() -> Args:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
        help="PostgreSQL database to DROP and recreate (its name must contain 'bench').",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
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
    parser.add_argument("--port", type=int, default=0, help="default: a free port")
    ns = parser.parse_args()
    return Args(**vars(ns))


def main() -> int:
    # Run as a script, this file's directory is first on sys.path; the project's root
    # belongs there instead (bench.* and the Django apps are imported from it).
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
        "slow_stripe_ms": SLOW_STRIPE_MS,
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
    from bench import seed
    from bench.cpu import CpuWatch
    from billing.management.commands.reconcile_plans import BATCH
    from billing.models import PlanChange
    from billing.overrides import override_grant

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

    say("seeding new webhook customers (checkout paid in the sandbox)")
    fast_sequences = seed.webhook_customers(args.webhook_customers, tag="fast", progress=say)
    slow_sequences = seed.webhook_customers(args.slow_webhook_customers, tag="slow", progress=say)
    warmup_sequence, profile_sequence = seed.webhook_customers(2, tag="profile", progress=say)
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
    say(f"seeding {args.users:,} users and {args.plan_changes:,} plan changes")
    crowd = seed.crowd_seed(users=args.users, plan_changes=args.plan_changes, progress=say)
    seed.vacuum()

    endpoint = WebhookEndpoint.objects.filter(livemode=False, status="enabled").earliest(
        "djstripe_id"
    )
    webhook_path = f"/stripe/webhook/{endpoint.djstripe_uuid}/"
    ceiling_path = f"/bench/webhook/{endpoint.djstripe_uuid}/"
    say("profiling one customer's webhooks in-process (queries, Stripe calls)")
    # The first requests of a process load templates and caches: one customer unmeasured.
    webhook_profile(warmup_sequence, webhook_path, endpoint.secret)
    profile = webhook_profile(profile_sequence, webhook_path, endpoint.secret)
    discarded = seed.deliveries_discard()
    say(f"discarded {discarded} fixture deliveries: the load generator sends those events")
    fast_file, slow_file = OUT / "payloads-fast.json", OUT / "payloads-slow.json"
    fast_file.write_text(json.dumps(fast_sequences))
    slow_file.write_text(json.dumps(slow_sequences))
    staff_cookie = session_cookie(superuser.email)
    gating_cookie = session_cookie(gating_user.email)
    results["data"] = {
        "crowd": vars(crowd),
        "profile": [vars(p) for p in profile],
    }
    connections.close_all()

    def webhooks(payloads: Path, count: int, label: str) -> dict[str, Any]:
        common = {"mode": "sequences", "port": port, "secret": endpoint.secret}
        common.update(payloads=str(payloads), concurrency=CONCURRENCY)
        # The ceiling is fast: the same sequences several times over, for a steady rate.
        repeat = max(1, -(-CEILING_EVENTS // (count * 3)))
        say(f"{label}: ceiling (signature-only view), {count * 3 * repeat} events")
        ceiling = _trim(load({**common, "path": ceiling_path, "repeat": repeat}))
        since = timezone.now()
        say(f"{label}: dj-stripe endpoint, {count * 3} events")
        figure = _trim(load({**common, "path": webhook_path}))
        worker_drain()
        return {"ceiling": ceiling, "figure": figure, "stats": phase_stats(since)}

    def warm(cookie: str, paths: list[str]) -> None:
        # Unmeasured requests, enough for every gunicorn worker to have served each path.
        for path in paths:
            load(
                {"mode": "get", "port": port, "path": path, "cookie": cookie}
                | {"concurrency": GUNICORN_WORKERS * 2, "count": GUNICORN_WORKERS * 4}
            )

    # The admin shows 100 users a page; the middle one makes the database skip half.
    pages = -(-args.users // 100)
    middle = max(1, pages // 2)
    results["admin_middle_page"] = middle
    admin_pages = [
        ("first page", "", ""),
        ("filter: plan LaunchPack", "?plan__exact=launchpack", "?plan__exact=launchpack"),
        ("filter: billing status active", "?billing_status=active", ""),
        ("search: email fragment", "?q=customer04242", "?q=customer04242"),
        (f"page {middle:,} of {pages:,}", f"?p={middle}", f"?p={middle}"),
    ]
    real_admin, bare_admin = "/admin/accounts/user/", "/bench/admin/accounts/user/"

    say(f"starting gunicorn ({GUNICORN_WORKERS} workers) and the task worker on :{port}")
    with serving(fast_env, port, "fast"):
        with phase("webhooks, Stripe instant"):
            results["webhooks_fast"] = webhooks(fast_file, args.webhook_customers, "webhooks")

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

    say(f"restarting with the Stripe sandbox answering after {SLOW_STRIPE_MS} ms")
    with serving(slow_env, port, "slow"), phase(f"webhooks, Stripe +{SLOW_STRIPE_MS} ms"):
        results["webhooks_slow"] = webhooks(
            slow_file, args.slow_webhook_customers, f"webhooks, Stripe +{SLOW_STRIPE_MS} ms"
        )
    results["problems_slow"] = log_problems("slow")
    connection.close()

    say("reconcile_plans: ceiling (bare scan of every user), then the command")
    with phase("reconcile_plans"):
        results["scan"] = measure(fast_env, "scan")
        results["reconcile"] = measure(fast_env, "reconcile")
    # tracemalloc slows the job down, so memory is a second pass of its own (in which
    # reconcile_plans finds nothing left to fix).
    say("reconcile_plans and its ceiling again, under tracemalloc")
    results["scan_memory"] = measure(fast_env, "scan", tracemalloc=True)
    results["reconcile_memory"] = measure(fast_env, "reconcile", tracemalloc=True)

    results["machine"] = machine()
    results["elapsed_s"] = time.perf_counter() - _started
    (OUT / "results.json").write_text(json.dumps(results, indent=2, default=str))
    from bench.report import report_write

    report_write(results, args.out)
    say(f"wrote {args.out} in {results['elapsed_s']:.0f} s")
    return 0


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
