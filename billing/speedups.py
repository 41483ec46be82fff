"""Speed work that pays, kept apart from the rules it speeds up.

Each piece here was measured against its plain version in one `make bench` run
(`devtools/bench/run.py --only speed`, which turns a piece off with SPEED_PLAIN) and is kept only
because it won by more than 20 % on its own figure (issue 29; devtools/bench/RESULTS.md, *Speed
work against its plain version*). What won less was deleted.

- The webhook acknowledgement on PostgreSQL (`ack_backend`, `endpoint_load`, `store`):
  the rule is billing/webhook_queue.py's `acknowledge` (store the delivery and queue its
  processing, all or nothing), whose plain way, `enqueue()` inside
  `transaction.atomic()`, SQLite and SPEED_PLAIN=ack take. Measured at c=8 with Stripe
  at +300 ms and the worker running, 3 alternating rounds each, on the shared 2-core
  machine with other work taking about 85 % of its CPU (only the ratios count): 46
  events/s against plain's 17 (+160 %), p99 522 ms against 758 ms (+45 %); a second run
  47/s against 20/s (+132 %), p99 475 ms against 1,176 ms. Of that, the one statement
  unprepared made 39/s (p99 708 ms): preparing it added 19 % to the rate and 49 % to p99.
  On a quiet machine (`make bench BENCH_ARGS="--only speed --users 0"` at d415e52): 437
  events/s against plain's 238 (+84 %), p99 31.5 ms against 61.6 ms: the plain way
  misses the 50 ms the acknowledgement must keep; unprepared, 367/s and 46.4 ms.
- `heap_frozen` (reconcile_plans): see its docstring.
"""

from __future__ import annotations

import functools
import gc
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

import psycopg
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection
from django.db.backends.utils import CursorDebugWrapper
from django.db.models import Model
from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver
from django_tasks.base import Task
from django_tasks_db.backend import DatabaseBackend
from django_tasks_db.compat import normalize_json, task_backends, task_enqueued
from django_tasks_db.models import DBTaskResult
from djstripe.models import WebhookEndpoint, WebhookEventTrigger

from billing.models import WebhookDelivery

T = TypeVar("T")

# --- The webhook acknowledgement on PostgreSQL ------------------------------------------


def ack_prepared() -> bool:
    """Whether the acknowledgement reads and stores by prepared statements: on
    PostgreSQL, unless the bench turned it off (SPEED_PLAIN=ack)."""
    return connection.vendor == "postgresql" and "ack" not in settings.SPEED_PLAIN


def ack_backend(task: Task[[int], Any]) -> DatabaseBackend | None:
    """`task`'s django-tasks-db backend when the acknowledgement can be ONE statement
    (`store`): with `ack_prepared` and django-tasks-db's table; else None (the ORM's way)."""
    backend = task_backends[task.backend]
    return backend if ack_prepared() and isinstance(backend, DatabaseBackend) else None


def endpoint_load(uuid: UUID, fields: tuple[str, ...]) -> WebhookEndpoint | None:
    """The endpoint of `uuid` with only `fields` (and its pk), as this process read it
    less than ENDPOINT_KEPT_SECONDS ago, else read now by a statement prepared per
    connection: compiling the queryset was most of the lookup's time in-process (0.84 ms
    through the ORM, 0.30 ms prepared). SPEED_PLAIN=ack_kept reads it every time."""
    if "ack_kept" in settings.SPEED_PLAIN:
        return _endpoint_read(uuid, fields)
    now = time.monotonic()
    kept = _endpoints_kept.get((uuid, fields))
    if kept is not None and kept[0] > now:
        return kept[1]
    endpoint = _endpoint_read(uuid, fields)
    # An unknown uuid is not kept: anyone can send those, as many as they like.
    if endpoint is not None:
        _endpoints_kept[(uuid, fields)] = (now + ENDPOINT_KEPT_SECONDS, endpoint)
    return endpoint


# How long a web process answers from the endpoint row it read (`endpoint_load`): each
# acknowledgement then makes one round trip to the database instead of three (Django's
# health check, the endpoint, the store; py-spy on gunicorn in the renewal storm: the
# first two were 35 % of a request's time). A change made elsewhere reaches every process
# within this time: a new secret (rolling it at Stripe keeps the old one signing
# meanwhile; billing/webhook_queue.py also accepts the previous one), the endpoint
# disabled. A save or delete in this process forgets at once (`_endpoints_forget`).
ENDPOINT_KEPT_SECONDS = 5.0
_endpoints_kept: dict[tuple[UUID, tuple[str, ...]], tuple[float, WebhookEndpoint]] = {}


@receiver([post_save, post_delete], sender=WebhookEndpoint)
def _endpoints_forget(**kwargs: Any) -> None:
    _endpoints_kept.clear()


def _endpoint_read(uuid: UUID, fields: tuple[str, ...]) -> WebhookEndpoint | None:
    sql, names = _endpoint_sql(fields)
    row = checked_by_use(lambda: _fetchone(sql, [uuid]))
    return None if row is None else WebhookEndpoint.from_db(connection.alias, names, row)


def _fetchone(sql: str, params: list[Any]) -> Any:
    with prepared_cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def checked_by_use(statement: Callable[[], T]) -> T:
    """Run a request's first statement as Django's health check would leave it, without
    the check's own round trip first (CONN_HEALTH_CHECKS: a `SELECT 1` before each
    request's first query on a connection kept from an earlier one): if the statement
    fails and the connection turns out unusable (the database restarted, a failover),
    once more on a new connection. Only for statements that may run twice: the
    endpoint's read, and the store, whose duplicate check counts a delivery a first try
    stored before its answer was lost."""
    # (Django's own attributes for the check; django-stubs lacks them.)
    wrapper: Any = connection
    if (
        wrapper.connection is None
        or wrapper.health_check_done
        or not wrapper.health_check_enabled
        or "ack_kept" in settings.SPEED_PLAIN
    ):
        return statement()
    wrapper.health_check_done = True
    try:
        return statement()
    except (OperationalError, InterfaceError):
        if connection.in_atomic_block or connection.is_usable():
            raise
        connection.close()
        return statement()


@functools.cache
def _endpoint_sql(names: tuple[str, ...]) -> tuple[str, list[str]]:
    """The lookup's SQL and the attnames it reads, in the model's field order (as
    `Model.from_db` takes them), the primary key included."""
    meta = WebhookEndpoint._meta
    fields = [f for f in meta.concrete_fields if f.primary_key or f.name in names]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    uuid_column = quote(meta.get_field("djstripe_uuid").column)
    sql = f"SELECT {columns} FROM {quote(meta.db_table)} WHERE {uuid_column} = %s LIMIT 1"
    return sql, [f.attname for f in fields]


def _insert_values(obj: Model, *, exclude: str = "") -> tuple[str, str, str, list[Any]]:
    """Table, column list, placeholders and values of `obj` as Model.save would insert
    them (defaults, auto_now, each field's own conversion; the primary key unless it is
    generated by the database), without building an INSERT query."""
    fields, table, columns, placeholders = _insert_shape(type(obj), exclude)
    params = [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]
    return table, columns, placeholders, params


@functools.cache
def _insert_shape(model: type[Model], exclude: str) -> tuple[list[Any], str, str, str]:
    """What `_insert_values` writes of every `model` (the same for each row, so made
    once: asking each field its type cost more than the statement). Each placeholder
    casts to its column's type, without length (a cast would cut a long value where the
    insert refuses it): the values are sent apart from the SQL (`prepared_cursor`), and
    in an INSERT ... SELECT PostgreSQL would take an untyped one (None, a str for a uuid)
    as text."""
    meta = model._meta
    fields = [f for f in meta.concrete_fields if f is not meta.auto_field and f.name != exclude]
    # (A concrete field always has a column and a column type; the stubs allow None.)
    columns = ", ".join(connection.ops.quote_name(str(f.column)) for f in fields)
    placeholders = ", ".join(
        f"CAST(%s AS {_TYPMOD.sub('', str(f.db_type(connection)))})" for f in fields
    )
    return fields, connection.ops.quote_name(meta.db_table), columns, placeholders


_TYPMOD = re.compile(r"\(.*\)")


class _PreparedCursor(psycopg.Cursor[Any]):
    """Binds on the server (as Django's ServerBindingCursor, a psycopg Cursor) and
    prepares each statement it runs, once per connection: psycopg keeps a connection's
    prepared statements and reuses them by their text."""

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        kwargs.setdefault("prepare", settings.DATABASE_PREPARED_STATEMENTS or None)
        return super().execute(query, params, **kwargs)


def prepared_cursor() -> Any:
    """A Django cursor (execute wrappers, query log, database errors mapped to Django's)
    over a psycopg cursor that sends the values apart from the SQL and prepares the
    statement, so the acknowledgement's statement is parsed and planned once per
    connection. Django binds on the client and prepares nothing by default (for
    connection poolers: settings.DATABASE_PREPARED_STATEMENTS turns this off). For this
    statement, planning anew took as long as running it (EXPLAIN ANALYZE: 0.25-0.35 ms
    planning, 0.2-0.3 ms execution), and quoting the body into the SQL text cost Python
    time besides."""
    # What Django's own cursor() does first: with CONN_HEALTH_CHECKS, a persistent
    # connection the database dropped (a restart, a failover) is replaced here, not
    # found dead by the statement (the first acknowledgement of each web process after
    # a drop answered 500: tests/billing/test_webhook_queue.py).
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    connection.validate_thread_sharing()
    raw = connection.connection
    if settings.DATABASE_PREPARED_STATEMENTS and raw.prepare_threshold is None:
        # Django connects with prepare_threshold None, with which psycopg prepares
        # nothing even when asked to. A count no statement reaches keeps every other
        # statement unprepared, as Django has it, and lets the ones asked for be.
        raw.prepare_threshold = 2**31
    with connection.wrap_database_errors:
        cursor = _PreparedCursor(raw)
    if connection.queries_logged:
        return _PreparedDebugCursor(cursor, connection)
    # (django-stubs types the argument as Django's wrapper; Django wraps a DB-API cursor.)
    return connection.make_cursor(cursor)  # type: ignore[arg-type]


class _PreparedDebugCursor(CursorDebugWrapper):
    """Django's query log (DEBUG, tests counting queries) for `_PreparedCursor`: Django
    reads the text of the last query from psycopg, which keeps none after running a
    prepared statement; logged is the statement as written, with its placeholders."""

    @contextmanager
    def debug_sql(self, *args: Any, **kwargs: Any) -> Iterator[None]:
        kwargs["use_last_executed_query"] = False
        with super().debug_sql(*args, **kwargs):
            yield


def store(
    trigger: WebhookEventTrigger,
    delivery: WebhookDelivery,
    now: datetime,
    *,
    task: Task[[int], Any],
    backend: DatabaseBackend,
) -> tuple[int, bool]:
    """The duplicate check, both inserts and the task row in ONE statement, which is its
    own transaction: a stored event id only counts one more delivery; a new one gets its
    trigger, its delivery and django-tasks-db's task row, or (a concurrent request stored
    the same event id first: IntegrityError) nothing at all.

    Why not `task.enqueue()`: in the bench's profile (bench/report.py, note W1) the
    enqueue's `create()` was the largest single cost of the acknowledgement, and it needs
    the transaction's BEGIN and COMMIT round trips besides. The row is built as the
    backend builds it (`DatabaseBackend._task_to_db_task`: the same fields, its id
    function, the model's pre_save handler, which stores "no run after" as its far-future
    date), and the
    backend's validation and `task_enqueued` signal are kept; only the args, which hold the
    delivery's id made by this statement, are built in SQL. A test compares the row with
    one made by `enqueue()` (tests/billing/test_webhook_queue.py), so an upgrade of
    django-tasks-db that changes its rows fails there."""
    # (django-tasks-db is typed against Django 6's django.tasks; on 5.2 it runs django_tasks.)
    backend.validate_task(task)  # type: ignore[arg-type]
    row: DBTaskResult[..., Any] = DBTaskResult(
        id=backend._get_id(),
        args_kwargs=None,
        priority=task.priority,
        task_path=task.module_path,
        queue_name=task.queue_name,
        run_after=task.run_after,  # type: ignore[misc]  # None: set by pre_save, below
        backend_name=backend.alias,
    )
    pre_save.send(DBTaskResult, instance=row, raw=False, using=connection.alias, update_fields=None)
    trigger_table, trigger_columns, trigger_values, trigger_params = _insert_values(trigger)
    # trigger_id: the id of the trigger inserted by the same statement.
    table, delivery_columns, delivery_values, delivery_params = _insert_values(
        delivery, exclude="trigger"
    )
    task_table, task_columns, task_values, task_params = _insert_values(row, exclude="args_kwargs")
    sql = (
        f"WITH dup AS (UPDATE {table} SET deliveries = deliveries + 1,"
        f" last_delivered_at = %s WHERE event_id = %s RETURNING id),"
        f" trig AS (INSERT INTO {trigger_table} ({trigger_columns})"
        f" SELECT {trigger_values} WHERE NOT EXISTS (SELECT 1 FROM dup) RETURNING id),"
        f" new AS (INSERT INTO {table} ({delivery_columns}, trigger_id)"
        f" SELECT {delivery_values}, trig.id FROM trig RETURNING id),"
        f" task AS (INSERT INTO {task_table} ({task_columns}, args_kwargs)"
        f" SELECT {task_values},"
        f" jsonb_build_object('args', jsonb_build_array(new.id), 'kwargs', '{{}}'::jsonb)"
        f" FROM new RETURNING id)"
        f" SELECT id, true FROM dup UNION ALL SELECT new.id, false FROM new, task"
    )
    params = [now, delivery.event_id, *trigger_params, *delivery_params, *task_params]
    row_returned = checked_by_use(lambda: _fetchone(sql, params))
    if row_returned is None:  # cannot happen: one of dup and new has a row
        raise AssertionError(f"Stripe event {delivery.event_id}: the store returned nothing")
    delivery_id, duplicate = int(row_returned[0]), bool(row_returned[1])
    if not duplicate:
        row.args_kwargs = normalize_json({"args": [delivery_id], "kwargs": {}})
        post_save.send(
            DBTaskResult,
            instance=row,
            created=True,
            raw=False,
            using=connection.alias,
            update_fields=None,
        )
        task_enqueued.send(type(backend), task_result=row.task_result)
    return delivery_id, duplicate


# --- reconcile_plans --------------------------------------------------------------------


@contextmanager
def heap_frozen() -> Iterator[None]:
    """Leave the objects alive now (Django, dj-stripe, stripe-python: the start-up heap)
    out of the collector's passes until the block ends; what the block allocates is
    still collected. For `reconcile_plans`, which allocates a few small objects for each
    of 100,000 users: each of the collector's full passes also walked the start-up heap.

    Measured (`devtools/bench/run.py --only speed`, 50,000 users, 3 alternating rounds, medians):
    a pass finding nothing to fix took 5.52 s plain and 4.21 s frozen, a 31 % win.
    SPEED_PLAIN=gc_freeze turns it off, for the bench to measure it again."""
    if "gc_freeze" in settings.SPEED_PLAIN:
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
