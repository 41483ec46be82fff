"""Persistence of sandbox Stripe objects: ids, clock, lookup, lists and expansion."""

from __future__ import annotations

import contextlib
import contextvars
import copy
import json
import secrets
import string
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, overload

from django.db import connection
from django.db.models import Q, QuerySet

from devtools.stripe_sandbox.models import SandboxClock, StripeObject

Obj = dict[str, Any]

_ALPHABET = string.ascii_letters + string.digits
# Stripe's id lengths, roughly: what people see in the dashboard.
_ID_LENGTH = {"cus": 14, "prod": 14, "si": 14, "cs_test": 58, "bps": 24, "acct": 16, "we": 24}


class StripeError(Exception):
    """An error answered the way Stripe answers it: status plus `{"error": {...}}`."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.type = type
        self.code = code
        self.param = param

    def body(self) -> Obj:
        error: Obj = {"type": self.type, "message": self.message}
        if self.code:
            error["code"] = self.code
        if self.param:
            error["param"] = self.param
        return {"error": error}


def missing(
    kind: str, object_id: str, *, param: str | None = None, status: int = 404
) -> StripeError:
    return StripeError(
        f"No such {kind}: '{object_id}'",
        status=status,
        code="resource_missing",
        param=param or "id",
    )


def new_id(prefix: str) -> str:
    length = _ID_LENGTH.get(prefix, 24)
    return f"{prefix}_" + "".join(secrets.choice(_ALPHABET) for _ in range(length))


# --- Clock ------------------------------------------------------------------------------


# Within one API request the clock's offset is read once (clock_read_once): Stripe answers
# a request at its own moment, and the offset moves only by `clock_advance`, which keeps
# the request's reading current.
_offset_read: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar(
    "sandbox_offset_read", default=None
)


@contextlib.contextmanager
def clock_read_once() -> Iterator[None]:
    """Within the block (one API request), `clock_offset()` reads the database once."""
    token = _offset_read.set([])
    try:
        yield
    finally:
        _offset_read.reset(token)


def clock_offset() -> int:
    read = _offset_read.get()
    if read:
        return read[0]
    clock = SandboxClock.objects.filter(pk=1).first()
    offset = clock.offset_seconds if clock else 0
    if read is not None:
        read.append(offset)
    return offset


# While the clock runs through what fell due, each step happens at its own moment.
_frozen: contextvars.ContextVar[int | None] = contextvars.ContextVar("sandbox_now", default=None)


def now() -> int:
    """The sandbox's unix time: real time plus the offset of `stripe_sandbox advance`."""
    frozen = _frozen.get()
    return frozen if frozen is not None else int(time.time()) + clock_offset()


@contextlib.contextmanager
def clock_at(ts: int) -> Iterator[int]:
    """Within the block, `now()` is `ts`: the clock moved on there first if it is behind
    (it never goes back). Even when the real time has passed `ts`: each step of
    `collection.clock_advance`'s walk happens at its own due time, however long the
    steps before it took to run, as on Stripe's test clock, frozen while it advances."""
    clock_set(ts)
    token = _frozen.set(ts)
    try:
        yield ts
    finally:
        _frozen.reset(token)


def clock_advance(seconds: int) -> int:
    clock, _ = SandboxClock.objects.get_or_create(pk=1)
    clock.offset_seconds += seconds
    clock.save(update_fields=["offset_seconds"])
    if (read := _offset_read.get()) is not None:
        read[:] = [clock.offset_seconds]
    return clock.offset_seconds


def clock_set(ts: int) -> int:
    """Move the clock on to unix time `ts` (never back); returns the sandbox's time."""
    if ts > now():
        clock_advance(ts - now())
    return now()


def month_add(ts: int, interval: str = "month", count: int = 1) -> int:
    """`ts` moved on by `count` intervals, calendar-aware like Stripe's billing cycles."""
    moment = datetime.fromtimestamp(ts, tz=UTC)
    if interval == "day":
        return ts + 86400 * count
    if interval == "week":
        return ts + 7 * 86400 * count
    months = count * (12 if interval == "year" else 1)
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    # Stripe keeps the anchor day and clamps to the month's end (31 Jan -> 28 Feb).
    for day in range(moment.day, 27, -1):
        try:
            return int(moment.replace(year=year, month=month, day=day).timestamp())
        except ValueError:
            continue
    return int(moment.replace(year=year, month=month, day=min(moment.day, 28)).timestamp())


# --- Objects ----------------------------------------------------------------------------


_TABLE = StripeObject._meta.db_table


def _stored(object_id: str, type: str | None, *, lock: bool = False) -> Obj | None:
    """The data of the object stored under `object_id` (of `type`, if given), or None.

    The sandbox's most frequent statement, written out: Django's query compiler costs
    several times what the statement does (about 0.6 ms a read against 0.1 ms)."""
    sql = f"SELECT data FROM {connection.ops.quote_name(_TABLE)} WHERE id = %s"
    params = [object_id]
    if type:
        sql += " AND type = %s"
        params.append(type)
    if lock and connection.features.has_select_for_update:
        sql += " FOR UPDATE"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    # The JSON's text on both databases (Django reads jsonb as text), decoded as the
    # model's JSONField decodes it.
    data: Obj | None = json.loads(row[0]) if row else None
    return data


def find(object_id: str, type: str | None = None) -> Obj | None:
    return _stored(object_id, type)


def get(object_id: str, type: str, *, kind: str | None = None, lock: bool = False) -> Obj:
    """The stored object, or Stripe's 404 `resource_missing`."""
    data = _stored(object_id, type, lock=lock)
    if data is None:
        raise missing(kind or type.split(".")[-1].replace("_", " "), object_id)
    return data


def save(obj: Obj) -> Obj:
    StripeObject.objects.update_or_create(
        pk=obj["id"],
        defaults={"type": obj["object"], "data": obj, "created": obj.get("created") or now()},
    )
    return obj


def all_of(type: str) -> list[Obj]:
    ordering = StripeObject._meta.ordering or ()
    return [row.data for row in StripeObject.objects.filter(type=type).order_by(*ordering)]


@overload
def render(obj: Obj) -> Obj: ...
@overload
def render(obj: Any) -> Any: ...
def render(obj: Any) -> Any:
    """A copy fit to send out: the sandbox's private keys dropped."""
    if isinstance(obj, dict):
        return {k: render(v) for k, v in obj.items() if not k.startswith("_")}
    if isinstance(obj, list):
        return [render(v) for v in obj]
    # JSON's scalars are immutable: the copy can share them.
    return obj if isinstance(obj, str | int | float | None) else copy.deepcopy(obj)


def list_envelope(data: list[Obj], url: str, *, has_more: bool = False) -> Obj:
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


_RANGES = ("gt", "gte", "lt", "lte")


def integer(value: Any, param: str) -> int:
    """A parameter that must be an integer, as Stripe reads the form-encoded text it is
    sent ("10" but not "1.5" or "soon"): else Stripe's 400 "Invalid integer", naming it."""
    try:
        return int(str(value))
    except ValueError as exc:
        raise StripeError(f"Invalid integer: {value}", param=param) from exc


def _created_filter(created: Any) -> int | dict[str, int] | None:
    """A list's `created` parameter: an exact time, ranges by operator, or None (absent)."""
    if isinstance(created, dict):
        return {
            op: integer(bound, f"created[{op}]") for op, bound in created.items() if op in _RANGES
        }
    return None if created in (None, "") else integer(created, "created")


def _created_matches(obj: Obj, created: int | dict[str, int] | None) -> bool:
    value = int(obj.get("created", 0))
    if not isinstance(created, dict):
        return created is None or value == created
    checks = {"gt": value.__gt__, "gte": value.__ge__, "lt": value.__lt__, "lte": value.__le__}
    return all(checks[op](bound) for op, bound in created.items())


def _limit(params: Obj) -> int:
    limit = integer(params.get("limit") or 10, "limit")
    if not 1 <= limit <= 100:
        raise StripeError("This value must be between 1 and 100.", param="limit")
    return limit


def paginate(items: list[Obj], params: Obj, url: str) -> Obj:
    """Stripe's list envelope: newest first, `limit` (1-100), `starting_after`/`ending_before`."""
    limit = _limit(params)
    if "created" in params:
        created = _created_filter(params["created"])
        items = [obj for obj in items if _created_matches(obj, created)]
    ids = [obj["id"] for obj in items]
    if after := params.get("starting_after"):
        if after not in ids:
            raise missing("object", after, param="starting_after", status=400)
        items = items[ids.index(after) + 1 :]
        page = items[:limit]
    elif before := params.get("ending_before"):
        if before not in ids:
            raise missing("object", before, param="ending_before", status=400)
        items = items[: ids.index(before)]
        page = items[-limit:]
    else:
        page = items[:limit]
    return list_envelope(copy.deepcopy(page), url, has_more=len(items) > len(page))


_NEWEST_FIRST = ("-created", "-inserted_at", "-id")


def paginate_rows(rows: QuerySet[StripeObject], params: Obj, url: str) -> Obj:
    """paginate() done by the database: the `created` range, the order and the page in SQL,
    so a page costs one page however many objects match (the Events API over 30 days of
    a busy account, which paginate() would read and decode whole for every page)."""
    limit = _limit(params)
    created = _created_filter(params.get("created"))
    if isinstance(created, dict):
        rows = rows.filter(**{f"created__{op}": bound for op, bound in created.items()})
    elif created is not None:
        rows = rows.filter(created=created)
    if after := params.get("starting_after"):
        rows = rows.filter(_beyond(rows, after, "starting_after", older=True))
    elif before := params.get("ending_before"):
        rows = rows.filter(_beyond(rows, before, "ending_before", older=False))
        # The `limit` objects just newer than the cursor, still sent newest first.
        found = [row.data for row in rows.order_by("created", "inserted_at", "id")[: limit + 1]]
        return list_envelope(found[:limit][::-1], url, has_more=len(found) > limit)
    found = [row.data for row in rows.order_by(*_NEWEST_FIRST)[: limit + 1]]
    return list_envelope(found[:limit], url, has_more=len(found) > limit)


def _beyond(rows: QuerySet[StripeObject], cursor: str, param: str, *, older: bool) -> Q:
    """The rows listed after `cursor` (older) or before it (newer), newest first."""
    anchor = rows.filter(id=cursor).values_list("created", "inserted_at").first()
    if anchor is None:
        raise missing("object", cursor, param=param, status=400)
    created, inserted_at = anchor
    op = "lt" if older else "gt"
    return (
        Q(**{f"created__{op}": created})
        | Q(created=created, **{f"inserted_at__{op}": inserted_at})
        | Q(created=created, inserted_at=inserted_at, **{f"id__{op}": cursor})
    )


def select(type: str, predicate: Callable[[Obj], bool] | None = None) -> list[Obj]:
    return [obj for obj in all_of(type) if predicate is None or predicate(obj)]


# --- Expansion --------------------------------------------------------------------------

# Fields Stripe includes only on request, computed from the sandbox's private keys.
Virtual = Callable[[Obj], Any]
VIRTUAL_FIELDS: dict[tuple[str, str], Virtual] = {}


def virtual(type: str, field: str) -> Callable[[Virtual], Virtual]:
    def register(fn: Virtual) -> Virtual:
        VIRTUAL_FIELDS[(type, field)] = fn
        return fn

    return register


def _expand_one(value: Any) -> Any:
    if isinstance(value, str) and (stored := find(value)) is not None:
        return copy.deepcopy(stored)
    return value


def _expand_path(value: Any, parts: list[str], key: str = "") -> Any:
    if not parts:
        return value
    if isinstance(value, list):
        return [_expand_path(item, parts, key) for item in value]
    if not isinstance(value, dict):
        return value
    head, rest = parts[0], parts[1:]
    # Virtual fields are keyed by the object's type, or by the field's name for hashes
    # that have no type (checkout.session.total_details.breakdown).
    compute = VIRTUAL_FIELDS.get((value.get("object") or key, head))
    if head not in value and compute:
        value[head] = compute(value)
    if head not in value:
        return value
    child = value[head]
    child = [_expand_one(c) for c in child] if isinstance(child, list) else _expand_one(child)
    value[head] = _expand_path(child, rest, head)
    return value


def expand(obj: Obj, paths: Iterable[str]) -> Obj:
    """A rendered copy of `obj` with each dotted path in `paths` whose value is a stored
    object's id replaced by that object, the way Stripe's `expand[]` does (lists are
    walked through; fields Stripe includes only on request are computed)."""
    if paths := sorted(set(paths), key=lambda p: p.count(".")):
        # Expanding writes into the object: into a copy (render copies too).
        obj = copy.deepcopy(obj)
        for path in paths:
            _expand_path(obj, path.split("."))
    return render(obj)


def ts_datetime(ts: int | None) -> datetime | None:
    return datetime.fromtimestamp(ts, tz=UTC) if ts else None
