"""Reading Stripe's form-encoded parameters, and the list and update helpers every
resource shares."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from devtools.stripe_sandbox import store
from devtools.stripe_sandbox.events import changes, event_emit
from devtools.stripe_sandbox.store import Obj, StripeError


def required(params: Obj, name: str) -> Any:
    value = params.get(name)
    if value in (None, ""):
        raise StripeError(f"Missing required param: {name}.", param=name)
    return value


def int_param(params: Obj, name: str, *, default: int | None = None, minimum: int = 0) -> int:
    value = params.get(name)
    if value in (None, ""):
        if default is None:
            raise StripeError(f"Missing required param: {name}.", param=name)
        return default
    number = store.integer(value, name)
    if number < minimum:
        raise StripeError(f"This value must be greater than or equal to {minimum}.", param=name)
    return number


def as_bool(value: Any) -> bool:
    return str(value).lower() == "true"


def list_param(params: Obj, name: str) -> list[Any]:
    value = params.get(name)
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def update_fields(obj: Obj, params: Obj, fields: tuple[str, ...]) -> None:
    for field in fields:
        if field in params:
            value = params[field]
            if field == "active":
                value = as_bool(value)
            obj[field] = value if value != "" else None


def updated(obj: Obj, before: Obj, event_type: str) -> Obj:
    if diff := changes(before, obj):
        if "updated" in obj:
            obj["updated"] = store.now()
        store.save(obj)
        event_emit(event_type, obj, previous=diff)
    return obj


def filtered(type: str, params: Obj, url: str, **checks: Callable[[Obj, Any], bool]) -> Obj:
    wanted = {name: params[name] for name in checks if params.get(name) not in (None, "", [])}
    items = store.select(
        type, lambda obj: all(checks[name](obj, value) for name, value in wanted.items())
    )
    return store.paginate(items, params, url)


def field_equals(name: str) -> Callable[[Obj, Any], bool]:
    return lambda obj, value: obj.get(name) == value


def flag_is(name: str) -> Callable[[Obj, Any], bool]:
    return lambda obj, value: obj.get(name) is as_bool(value)
