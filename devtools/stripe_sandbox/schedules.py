"""Subscription schedules, as Stripe's "Subscription schedules" guide describes them.

A schedule made `from_subscription` takes over the subscription: one phase, its current
items from the period start to the period end, `end_behavior: release`. Updating the
phases plans changes (a downgrade at the period end: the current phase until
`current_period_end`, then a phase with the lower price). When the clock reaches a
phase's end, the next phase's items replace the subscription's (the renewal then bills
the new price); after the last phase the schedule completes (`release`: the
subscription goes on by itself; `cancel`: it is cancelled). `release` lets go of the
subscription now, `cancel` cancels the schedule and the subscription. While a schedule
manages a subscription, Stripe refuses to change its cancellation directly.
"""

from __future__ import annotations

import copy
from typing import Any

from django.db import transaction

from devtools.stripe_sandbox import objects, store
from devtools.stripe_sandbox.events import changes, event_emit
from devtools.stripe_sandbox.store import Obj, StripeError

END_BEHAVIORS = {"release", "cancel"}
DURATION_INTERVALS = {"day", "week", "month", "year"}


def managed_error(sub: Obj) -> StripeError:
    """Stripe's answer to `cancel_at_period_end` (or `cancel_at`) on a subscription that
    a schedule manages."""
    return StripeError(
        f"The subscription is managed by the subscription schedule `{sub['schedule']}`, "
        "and updating any cancelation behavior directly is not allowed. "
        "Please update the schedule instead.",
        param="cancel_at_period_end",
    )


def _period(sub: Obj) -> tuple[int, int]:
    items = sub["items"]["data"]
    return (
        min(i["current_period_start"] for i in items),
        max(i["current_period_end"] for i in items),
    )


def _phase(*, items: list[Obj], currency: str, start: int, end: int | None) -> Obj:
    return {
        "add_invoice_items": [],
        "application_fee_percent": None,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        "billing_cycle_anchor": None,
        "billing_thresholds": None,
        "collection_method": None,
        "currency": currency,
        "default_payment_method": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "end_date": end,
        "invoice_settings": None,
        "items": items,
        "metadata": {},
        "on_behalf_of": None,
        "proration_behavior": "create_prorations",
        "start_date": start,
        "transfer_data": None,
        "trial_end": None,
    }


def _phase_item(price: Obj, quantity: int) -> Obj:
    return {
        "billing_thresholds": None,
        "discounts": [],
        "metadata": {},
        "plan": price["id"],
        "price": price["id"],
        "quantity": quantity,
        "tax_rates": [],
    }


def _schedule(*, sub: Obj, phases: list[Obj]) -> Obj:
    return {
        "id": store.new_id("sub_sched"),
        "object": "subscription_schedule",
        "application": None,
        "billing_mode": {"flexible": None, "type": "classic", "updated_at": None},
        "canceled_at": None,
        "completed_at": None,
        "created": store.now(),
        "current_phase": None,
        "customer": sub["customer"],
        "customer_account": None,
        "default_settings": {
            "application_fee_percent": None,
            "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
            "billing_cycle_anchor": "automatic",
            "billing_thresholds": None,
            "collection_method": "charge_automatically",
            "default_payment_method": None,
            "description": None,
            "invoice_settings": {
                "account_tax_ids": None,
                "days_until_due": None,
                "issuer": {"type": "self"},
            },
            "on_behalf_of": None,
            "transfer_data": None,
        },
        "end_behavior": "release",
        "livemode": False,
        "metadata": {},
        "phases": phases,
        "released_at": None,
        "released_subscription": None,
        "status": "active",
        "subscription": sub["id"],
        "test_clock": None,
    }


def _current_phase_set(schedule: Obj) -> None:
    now = store.now()
    current = next(
        (p for p in schedule["phases"] if p["start_date"] <= now < (p["end_date"] or 2**62)),
        None,
    )
    schedule["current_phase"] = (
        {"start_date": current["start_date"], "end_date": current["end_date"]}
        if current and schedule["status"] == "active"
        else None
    )


def live_schedule(schedule_id: str) -> Obj:
    schedule = store.get(schedule_id, "subscription_schedule", lock=True)
    if schedule["status"] not in {"active", "not_started"}:
        raise StripeError(
            f"You cannot update a subscription schedule that is currently in the "
            f"`{schedule['status']}` status. It must be in either `not_started` or `active`.",
            param="schedule",
        )
    return schedule


def _subscription_set(sub: Obj, schedule_id: str | None) -> None:
    before = copy.deepcopy(sub)
    sub["schedule"] = schedule_id
    for item in sub["items"]["data"]:
        store.save(item)
    store.save(sub)
    event_emit("customer.subscription.updated", sub, previous=changes(before, sub))


def schedule_create(params: Obj) -> Obj:
    """POST /v1/subscription_schedules with `from_subscription` (the only form the
    sandbox knows: a schedule for an existing subscription)."""
    sub_id = params.get("from_subscription")
    if not sub_id:
        raise StripeError(
            "The sandbox creates subscription schedules only `from_subscription`.",
            param="from_subscription",
        )
    extra = sorted(set(params) - {"from_subscription", "expand", "metadata"})
    if extra:
        raise StripeError(
            f"You cannot set `{extra[0]}` if `from_subscription` is set.", param=extra[0]
        )
    with transaction.atomic():
        sub = store.get(sub_id, "subscription", lock=True)
        if sub["status"] in {"canceled", "incomplete_expired"}:
            raise StripeError(
                f"The subscription {sub_id} is {sub['status']}.", param="from_subscription"
            )
        if sub.get("schedule"):
            raise StripeError(
                f"You cannot migrate a subscription that is already attached to a schedule: "
                f"`{sub['schedule']}`.",
                param="from_subscription",
            )
        start, end = _period(sub)
        items = [_phase_item(i["price"], i["quantity"]) for i in sub["items"]["data"]]
        schedule = _schedule(
            sub=sub, phases=[_phase(items=items, currency=sub["currency"], start=start, end=end)]
        )
        schedule["metadata"] = objects.metadata_merge({}, params.get("metadata"))
        _current_phase_set(schedule)
        store.save(schedule)
        event_emit("subscription_schedule.created", schedule)
        _subscription_set(sub, schedule["id"])
        return schedule


def _phases_parse(schedule: Obj, sub: Obj, raw: Any) -> list[Obj]:
    if not isinstance(raw, list) or not raw:
        raise StripeError("Invalid array", param="phases")
    phases: list[Obj] = []
    previous_end: int | None = schedule["phases"][0]["start_date"]
    for index, given in enumerate(raw):
        param = f"phases[{index}]"
        if "iterations" in given:
            raise StripeError(
                "Received unknown parameter: iterations (use `duration`).",
                param=f"{param}[iterations]",
            )
        start = int(given["start_date"]) if given.get("start_date") else previous_end
        if start is None:
            raise StripeError(
                "The start_date of a phase must be set.", param=f"{param}[start_date]"
            )
        if index and start != previous_end:
            raise StripeError(
                "Phases must be contiguous: each start_date is the previous end_date.",
                param=f"{param}[start_date]",
            )
        end = _phase_end(given, start, param)
        if end is None and index != len(raw) - 1:
            raise StripeError(
                "Every phase but the last needs an end_date or a duration.",
                param=f"{param}[end_date]",
            )
        if end is not None and end <= start:
            raise StripeError(
                "The end_date must be after the start_date.", param=f"{param}[end_date]"
            )
        items = []
        for i, item in enumerate(given.get("items") or []):
            price = store.find(item.get("price", ""), "price")
            if price is None or not price.get("recurring"):
                raise store.missing(
                    "price", item.get("price", ""), param=f"{param}[items][{i}][price]", status=400
                )
            if price["currency"] != sub["currency"]:
                raise StripeError(
                    "All prices on a subscription must have the same currency.",
                    param=f"{param}[items][{i}][price]",
                )
            items.append(_phase_item(price, int(item.get("quantity") or 1)))
        if not items:
            raise StripeError("Missing required param: items.", param=f"{param}[items]")
        phase = _phase(items=items, currency=sub["currency"], start=start, end=end)
        if given.get("proration_behavior"):
            phase["proration_behavior"] = given["proration_behavior"]
        phase["metadata"] = objects.metadata_merge({}, given.get("metadata"))
        phases.append(phase)
        previous_end = end
    if (
        phases[0]["start_date"] != schedule["phases"][0]["start_date"]
        and (schedule["current_phase"])
    ):
        raise StripeError(
            "You cannot change the start_date of the current phase.",
            param="phases[0][start_date]",
        )
    return phases


def _phase_end(given: Obj, start: int, param: str) -> int | None:
    if given.get("end_date"):
        return int(given["end_date"])
    duration = given.get("duration")
    if not duration:
        return None
    interval = duration.get("interval")
    if interval not in DURATION_INTERVALS:
        raise StripeError(
            f"Invalid duration interval: {interval}", param=f"{param}[duration][interval]"
        )
    return store.month_add(start, interval, int(duration.get("interval_count") or 1))


def schedule_update(schedule_id: str, params: Obj) -> Obj:
    """POST /v1/subscription_schedules/{id}: `phases`, `end_behavior`, `metadata`,
    `proration_behavior` (changes only future phases here, so nothing is prorated)."""
    with transaction.atomic():
        schedule = live_schedule(schedule_id)
        before = copy.deepcopy(schedule)
        sub = store.get(schedule["subscription"], "subscription")
        if "end_behavior" in params:
            if params["end_behavior"] not in END_BEHAVIORS:
                raise StripeError(
                    f"Invalid end_behavior: {params['end_behavior']}", param="end_behavior"
                )
            schedule["end_behavior"] = params["end_behavior"]
        if "metadata" in params:
            schedule["metadata"] = objects.metadata_merge(schedule["metadata"], params["metadata"])
        if "phases" in params:
            schedule["phases"] = _phases_parse(schedule, sub, params["phases"])
        _current_phase_set(schedule)
        if diff := changes(before, schedule):
            store.save(schedule)
            event_emit("subscription_schedule.updated", schedule, previous=diff)
        return schedule


def schedule_release(schedule_id: str) -> Obj:
    """POST /v1/subscription_schedules/{id}/release: the subscription stays as it is,
    no longer managed."""
    with transaction.atomic():
        schedule = live_schedule(schedule_id)
        return _let_go(schedule, status="released", event="subscription_schedule.released")


def _let_go(schedule: Obj, *, status: str, event: str) -> Obj:
    before = copy.deepcopy(schedule)
    ts = store.now()
    schedule["status"] = status
    schedule["current_phase"] = None
    if status == "released":
        schedule["released_at"] = ts
    else:
        schedule["completed_at"] = ts
    schedule["released_subscription"] = schedule["subscription"]
    schedule["subscription"] = None
    store.save(schedule)
    event_emit(event, schedule, previous=changes(before, schedule))
    sub = store.get(schedule["released_subscription"], "subscription", lock=True)
    if sub.get("schedule") == schedule["id"]:
        _subscription_set(sub, None)
    return schedule


def schedule_canceled(schedule: Obj) -> None:
    """The subscription a schedule manages is cancelled: so is the schedule."""
    before = copy.deepcopy(schedule)
    schedule["status"] = "canceled"
    schedule["canceled_at"] = store.now()
    schedule["current_phase"] = None
    store.save(schedule)
    event_emit("subscription_schedule.canceled", schedule, previous=changes(before, schedule))


def schedule_of(sub: Obj) -> Obj | None:
    schedule_id = sub.get("schedule")
    return store.get(schedule_id, "subscription_schedule", lock=True) if schedule_id else None


def phase_transition(sub: Obj) -> str:
    """At the end of `sub`'s period (the clock is there): move its schedule on.

    Returns "cancel" when the schedule ends with `end_behavior: cancel` (the caller ends
    the subscription), else "renew". The next phase's items replace the subscription's
    (same item ids, new prices), so the renewal that follows bills them.
    """
    schedule = schedule_of(sub)
    if schedule is None or schedule["status"] != "active":
        return "renew"
    now = store.now()
    # The phase that ran until this moment, and the one that starts at its end.
    ending = next(
        (
            p
            for p in schedule["phases"]
            if p["start_date"] < now and (p["end_date"] is None or p["end_date"] >= now)
        ),
        None,
    )
    if ending is None or ending["end_date"] is None or ending["end_date"] > now:
        return "renew"
    later = [p for p in schedule["phases"] if p["start_date"] == ending["end_date"]]
    if not later:
        _let_go(schedule, status="completed", event="subscription_schedule.completed")
        sub["schedule"] = None
        return "cancel" if schedule["end_behavior"] == "cancel" else "renew"
    nxt = later[0]
    _items_apply(sub, nxt["items"])
    before = copy.deepcopy(schedule)
    _current_phase_set(schedule)
    store.save(schedule)
    event_emit("subscription_schedule.updated", schedule, previous=changes(before, schedule))
    return "renew"


def next_phase_apply(sub: Obj, *, at: int) -> None:
    """Give `sub` (a copy) the items of its schedule's phase that starts `at`, as the
    renewal then will: Stripe's preview of the next invoice bills a scheduled change."""
    schedule = store.get(sub["schedule"], "subscription_schedule") if sub.get("schedule") else None
    if schedule is None or schedule["status"] != "active":
        return
    phase = next((p for p in schedule["phases"] if p["start_date"] == at), None)
    if phase is not None:
        _items_apply(sub, phase["items"])


def _items_apply(sub: Obj, phase_items: list[Obj]) -> None:
    items = sub["items"]["data"]
    for index, wanted in enumerate(phase_items):
        price = store.get(wanted["price"], "price")
        if index < len(items):
            items[index]["price"] = price
            items[index]["plan"] = objects.plan_of(price)
            items[index]["quantity"] = wanted["quantity"]
    del items[len(phase_items) :]
