"""The sandbox's Stripe API for subscription schedules (devtools/stripe_sandbox/schedules.py; their
cancellation, which ends the subscription, is a workflow of actions.py)."""

from __future__ import annotations

from devtools.stripe_sandbox import actions, schedules, store
from devtools.stripe_sandbox.api.params import field_equals, filtered
from devtools.stripe_sandbox.api.router import ID, route
from devtools.stripe_sandbox.store import Obj


@route("POST", "/subscription_schedules")
def schedule_create(params: Obj) -> Obj:
    return schedules.schedule_create(params)


@route("GET", f"/subscription_schedules/{ID}")
def schedule_retrieve(params: Obj, id: str) -> Obj:
    return store.get(id, "subscription_schedule")


@route("POST", f"/subscription_schedules/{ID}")
def schedule_update(params: Obj, id: str) -> Obj:
    return schedules.schedule_update(id, params)


@route("POST", f"/subscription_schedules/{ID}/release")
def schedule_release(params: Obj, id: str) -> Obj:
    return schedules.schedule_release(id)


@route("POST", f"/subscription_schedules/{ID}/cancel")
def schedule_cancel(params: Obj, id: str) -> Obj:
    return actions.schedule_cancel(id)


@route("GET", "/subscription_schedules")
def schedule_list(params: Obj) -> Obj:
    return filtered(
        "subscription_schedule",
        params,
        "/v1/subscription_schedules",
        customer=field_equals("customer"),
    )
