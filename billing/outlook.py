"""What is coming next for a customer's subscription, in words.

One rule, read by the dashboard and the billing page alike: a subscription set to cancel
at the period end "Cancels on <date>"; one on a free trial "Trial ends on <date>" (then
its price); one whose schedule moves it to another price at the period end "Changes to
<Plan> on <date>"; otherwise it renews on the period end, monthly or yearly. The amount of
the next payment is Stripe's own preview of the next invoice (billing/next_charge.py: tax
and discounts as Stripe will apply them), never the items' prices added up. Read from
dj-stripe's synced rows (`stripe_data`) and the kept preview, never from Stripe, so a page
that shows it makes no Stripe call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from djstripe.models import Price, SubscriptionSchedule

from accounts.models import User
from billing.next_charge import next_charge_for
from billing.plans import Interval, Plan, price_plan, recurring_interval
from billing.stripe_api import live_subscription
from billing.stripe_layout import subscription_period
from billing.subscriptions import subscription_sells

Kind = Literal["renews", "cancels", "changes", "trial"]

STATUS_WORDS = {
    "active": "Active",
    "trialing": "On a free trial",
    "past_due": "Payment overdue: we are retrying your card",
    "unpaid": "Unpaid",
    "incomplete": "Waiting for the first payment",
    "incomplete_expired": "Never started: the first payment did not go through",
    "canceled": "Cancelled",
    "paused": "Paused",
}


@dataclass(frozen=True)
class Outlook:
    """The customer's subscription and what happens to it at the end of this period."""

    subscription_id: str
    status: str
    plan: Plan | None  # the plan the subscription sells now
    kind: Kind
    on: datetime | None  # the end of the current period
    # The next payment as Stripe will charge it, minor units: None when it cancels, or
    # while Stripe's preview has not been fetched yet.
    amount: int | None
    currency: str
    schedule_id: str | None  # an active schedule managing the subscription
    next_plan: Plan | None = None  # for "changes"
    interval: Interval | None = None  # what the items bill at now: monthly or annual
    next_interval: Interval | None = None  # for "changes"
    # The VAT in `amount`, as Stripe's preview has it (0: none, or tax off).
    tax: int = 0

    @property
    def status_words(self) -> str:
        return STATUS_WORDS.get(self.status, self.status.replace("_", " ").capitalize())

    @property
    def plan_label(self) -> str:
        return Plan(self.plan).label if self.plan else "Unknown plan"

    @property
    def next_plan_label(self) -> str:
        return Plan(self.next_plan).label if self.next_plan else ""

    @property
    def per(self) -> str:
        """What the next payment pays for: "year" or "month" ("£490.00/year")."""
        interval = self.next_interval if self.kind == "changes" else self.interval
        return "year" if interval == Interval.ANNUAL else "month"

    @property
    def interval_words(self) -> str:
        return "yearly" if self.interval == Interval.ANNUAL else "monthly"

    @property
    def overdue(self) -> bool:
        """The period has renewed but its payment has not come in."""
        return self.status in {"past_due", "unpaid"} and self.kind == "renews"

    def sentence(self) -> str:
        """ "Cancels on 1 February 2027", "Changes to FlowKit on 1 February 2027",
        "Renews on 1 February 2027"."""
        when = long_date(self.on) if self.on else "the end of the period"
        if self.overdue:
            # The period has renewed but its payment has not come in: "Renews on" the
            # next date would tell the customer all is well (the banner says what to do).
            return "Payment overdue"
        if self.kind == "cancels":
            return f"Cancels on {when}"
        if self.kind == "trial":
            return f"Trial ends on {when}"
        if self.kind == "changes":
            if self.next_plan == self.plan:  # annual -> monthly on the same plan
                return f"Changes to {self.next_plan_label} monthly on {when}"
            return f"Changes to {self.next_plan_label} on {when}"
        return f"Renews on {when}"


def long_date(moment: datetime) -> str:
    """1 February 2027 (no leading zero, the month in words, in UTC like Stripe's)."""
    moment = moment.astimezone(UTC)
    return f"{moment.day} {moment:%B %Y}"


def _ts(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), tz=UTC) if value else None


def _price_plan(price: Mapping[str, Any]) -> Plan | None:
    sold = price_plan(price_id=price.get("id", ""), lookup_key=price.get("lookup_key"))
    return sold[0] if sold else None


def _price_interval(price: Mapping[str, Any]) -> Interval | None:
    # The Price's own `recurring` says how often it bills, whatever its lookup key.
    return recurring_interval(dict(price)) if price.get("recurring") else None


def planned_phase(
    schedule: Mapping[str, Any] | None, *, period_end: int | None
) -> Mapping[str, Any] | None:
    """The phase of an active schedule that starts at the end of the current period."""
    if not schedule or schedule.get("status") != "active" or period_end is None:
        return None
    return next(
        (p for p in schedule.get("phases") or [] if p.get("start_date") == period_end), None
    )


def subscription_outlook(
    subscription: Mapping[str, Any],
    *,
    schedule: Mapping[str, Any] | None = None,
    prices: Mapping[str, Mapping[str, Any]] | None = None,
    next_amount: int | None = None,
    next_tax: int = 0,
) -> Outlook:
    """The outlook of one subscription (its `stripe_data`), given its schedule's and the
    prices the schedule names, and the amount of Stripe's preview of its next invoice.
    Pure: reads nothing, writes nothing."""
    items = (subscription.get("items") or {}).get("data") or []
    sold = subscription_sells(dict(subscription))
    # The interval the plan's item bills at (an add-on's may differ); with no plan item,
    # the first item's.
    interval_item = sold.item if sold else (items[0] if items else {})
    period_end = subscription_period(subscription)[1]
    active_schedule = schedule if schedule and schedule.get("status") == "active" else None
    common = {
        "subscription_id": subscription.get("id", ""),
        "schedule_id": (active_schedule or {}).get("id"),
        "status": subscription.get("status", ""),
        "plan": sold.plan if sold else None,
        "on": _ts(period_end),
        "currency": subscription.get("currency") or "",
        "interval": _price_interval(interval_item.get("price") or {}),
        "tax": next_tax,
    }
    if subscription.get("cancel_at_period_end") or subscription.get("cancel_at"):
        at = subscription.get("cancel_at") or period_end
        return Outlook(**{**common, "on": _ts(at)}, kind="cancels", amount=None)
    if subscription.get("status") == "trialing":
        # The trial's end is when the first payment is taken, at the items' price.
        at = subscription.get("trial_end") or period_end
        return Outlook(**{**common, "on": _ts(at)}, kind="trial", amount=next_amount)
    phase = planned_phase(schedule, period_end=period_end)
    if phase:
        phase_items = [
            {
                "price": dict((prices or {}).get(_id(i.get("price")), {"id": _id(i.get("price"))})),
                "quantity": i.get("quantity"),
            }
            for i in phase.get("items") or []
        ]
        next_plans = [p for i in phase_items if (p := _price_plan(i["price"]))]
        next_plan = next_plans[0] if next_plans else None
        next_interval = _price_interval(phase_items[0]["price"]) if phase_items else None
        # A price the sync has not brought yet says nothing of its interval: the plan's.
        next_interval = next_interval or common["interval"]
        if next_plan and (next_plan, next_interval) != (common["plan"], common["interval"]):
            return Outlook(
                **common,
                kind="changes",
                amount=next_amount,
                next_plan=next_plan,
                next_interval=next_interval,
            )
    return Outlook(**common, kind="renews", amount=next_amount)


def _id(value: Any) -> str:
    return (value.get("id") or "") if isinstance(value, Mapping) else (value or "")


def outlook_for(user: User) -> Outlook | None:
    """The outlook of `user`'s live subscription from the synced rows, or None."""
    subscription = live_subscription(user)
    if subscription is None:
        return None
    schedule = None
    if schedule_id := _id(subscription.get("schedule")):
        schedule = (
            SubscriptionSchedule.objects.filter(id=schedule_id)
            .values_list("stripe_data", flat=True)
            .first()
        )
    prices: dict[str, Mapping[str, Any]] = {}
    if schedule:
        ids = {_id(i.get("price")) for p in schedule.get("phases") or [] for i in p["items"]}
        prices = dict(Price.objects.filter(id__in=ids).values_list("id", "stripe_data"))
    charge = next_charge_for(subscription.get("id", ""))
    return subscription_outlook(
        subscription,
        schedule=schedule,
        prices=prices,
        next_amount=charge.amount_due if charge else None,
        next_tax=charge.tax if charge else 0,
    )
