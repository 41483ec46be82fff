"""The data `make bench` runs against, written straight into the bench database.

Called by devtools/bench/run.py after `django.setup()`. Two kinds of data:
- the crowd: many users with a plan history and the Stripe rows that explain each plan
  (dj-stripe customers and subscriptions, one-off purchases), inserted in bulk;
- webhook customers: new customers paying through the sandbox's checkout, whose
  webhook events (as the sandbox would deliver them) the load generator sends.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise

from django.contrib.auth.hashers import make_password
from django.db import connection, transaction
from django.utils import timezone
from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult
from djstripe.models import Customer, Price, Subscription

from accounts.models import User
from billing.checkout import checkout_session_create
from billing.entitlements import BILLING_FIELDS, billing_columns, facts_load
from billing.models import OneOffPurchase, PlanChange
from devtools.stripe_sandbox import store
from devtools.stripe_sandbox.actions import checkout_pay, subscription_renew
from devtools.stripe_sandbox.models import Delivery, StripeObject
from devtools.stripe_sandbox.objects import CARD_OK

CHUNK = 10_000
CROWD_DOMAIN = "crowd.bench.smartflow.test"
# The events a new customer's checkout sends that the app acts on, in the order the
# sandbox (like Stripe) emits them.
WEBHOOK_EVENTS = ("customer.subscription.created", "invoice.paid", "checkout.session.completed")

Progress = Callable[[str], None]


@dataclass
class CrowdReport:
    users: int = 0
    plan_changes: int = 0
    customers: int = 0
    subscriptions: int = 0
    oneoffs: int = 0
    drifted: int = 0


def _kind(i: int) -> str:
    """Who crowd user `i` is. Mostly Starter; paid plans explained by Stripe rows; one in
    500 stored on a plan nothing explains, so that reconcile_plans has drift to fix."""
    slot = i % 20
    if i % 500 == 7:
        return "drifted"
    if slot in (0, 1, 10, 11):
        return "flowkit_sub"  # 20%: an active FlowKit subscription
    if slot == 2:
        return "launchpack_sub"  # 5%: an active LaunchPack subscription
    if slot == 12:
        return "launchpack_oneoff"  # 5%: LaunchPack bought once
    if slot in (3, 13):
        return "canceled_sub"  # 10%: subscribed once, cancelled, back on Starter
    return "starter"


_FINAL_PLAN = {
    "flowkit_sub": "flowkit",
    "launchpack_sub": "launchpack",
    "launchpack_oneoff": "launchpack",
    "canceled_sub": "starter",
    "starter": "starter",
    "drifted": "launchpack",
}


def _history(final: str, changes: int) -> list[str]:
    """Plans from Starter to `final` in `changes` steps, never the same twice in a row."""
    plans = ["starter"]
    for step in range(changes):
        last = step == changes - 1
        if last and final != plans[-1]:
            plans.append(final)
        else:
            # Any other plan, but one that still lets the last step land on `final`.
            options = [p for p in ("flowkit", "launchpack", "starter") if p != plans[-1]]
            if step == changes - 2:
                options = [p for p in options if p != final] or options
            plans.append(options[0])
    return plans


def _subscription_data(
    *, sub_id: str, customer_id: str, price: Price, status: str, start: int
) -> dict[str, object]:
    """The fields of a Stripe subscription that billing and the admin read."""
    return {
        "id": sub_id,
        "object": "subscription",
        "customer": customer_id,
        "status": status,
        "created": start,
        "currency": price.currency,
        "cancel_at_period_end": False,
        "canceled_at": start + 40 * 86400 if status == "canceled" else None,
        "items": {
            "object": "list",
            "data": [
                {
                    "id": sub_id.replace("sub_", "si_"),
                    "object": "subscription_item",
                    "quantity": 1,
                    "current_period_start": start,
                    "current_period_end": start + 30 * 86400,
                    "price": price.stripe_data,
                }
            ],
        },
        "livemode": False,
        "metadata": {},
    }


def crowd_seed(*, users: int, plan_changes: int, progress: Progress) -> CrowdReport:
    """Insert `users` users and `plan_changes` PlanChange rows (spread evenly), with the
    customers, subscriptions and one-off purchases that explain each stored plan."""
    prices = {p.lookup_key: p for p in Price.objects.filter(lookup_key__isnull=False)}
    password = make_password(None)  # unusable: nobody logs in as the crowd
    now = timezone.now()
    report = CrowdReport()
    for first in range(0, users, CHUNK):
        indexes = range(first, min(first + CHUNK, users))
        with transaction.atomic():
            _chunk_seed(indexes, users, plan_changes, prices, password, now, report)
        progress(f"crowd: {report.users:,} users, {report.plan_changes:,} plan changes")
    return report


def _chunk_seed(
    indexes: range,
    users: int,
    plan_changes: int,
    prices: dict[str, Price],
    password: str,
    now: datetime,
    report: CrowdReport,
) -> None:
    span = timedelta(days=730)
    batch = [
        User(
            email=f"customer{i:06d}@{CROWD_DOMAIN}",
            password=password,
            plan=_FINAL_PLAN[_kind(i)],
            phone=f"+4479{i:08d}" if i % 3 == 0 else "",
            sms_opt_in=i % 6 == 0,
            # Oldest first, spread over two years, so "newest first" is a real sort.
            date_joined=now - span + span * (i / users),
        )
        for i in indexes
    ]
    created = User.objects.bulk_create(batch, batch_size=5000)
    customers: list[Customer] = []
    subscriptions: list[Subscription] = []
    oneoffs: list[OneOffPurchase] = []
    changes: list[PlanChange] = []
    per_user, extra = divmod(plan_changes, users)
    for i, user in zip(indexes, created, strict=True):
        kind = _kind(i)
        joined = int(user.date_joined.timestamp())
        if kind.endswith("_sub"):
            customer_id, sub_id = f"cus_bench{i:07d}", f"sub_bench{i:07d}"
            plan = "launchpack" if kind == "launchpack_sub" else "flowkit"
            status = "canceled" if kind == "canceled_sub" else "active"
            customers.append(
                Customer(
                    id=customer_id,
                    livemode=False,
                    subscriber=user,
                    email=user.email,
                    created=user.date_joined,
                    stripe_data={"id": customer_id, "object": "customer", "email": user.email},
                )
            )
            subscriptions.append(
                Subscription(
                    id=sub_id,
                    livemode=False,
                    customer_id=customer_id,
                    created=user.date_joined,
                    stripe_data=_subscription_data(
                        sub_id=sub_id,
                        customer_id=customer_id,
                        price=prices[f"{plan}_monthly"],
                        status=status,
                        start=joined,
                    ),
                )
            )
        elif kind == "launchpack_oneoff":
            price = prices["launchpack_oneoff"]
            oneoffs.append(
                OneOffPurchase(
                    user=user,
                    plan="launchpack",
                    checkout_session_id=f"cs_bench{i:07d}",
                    payment_intent_id=f"pi_bench{i:07d}",
                    price_id=price.id,
                    amount=price.unit_amount or 0,
                    currency=price.currency,
                    paid_at=user.date_joined,
                )
            )
        report.drifted += kind == "drifted"
        count = per_user + (1 if i < extra else 0)
        plans = _history(_FINAL_PLAN[kind], count)
        for step, (old, new) in enumerate(pairwise(plans)):
            at = min(user.date_joined + timedelta(days=1 + 30 * step), now)
            source = PlanChange.Source.CHECKOUT if step == 0 else PlanChange.Source.SUBSCRIPTION
            changes.append(
                PlanChange(
                    user=user,
                    old_plan=old,
                    new_plan=new,
                    source=source,
                    stripe_event_id=f"evt_bench{i:07d}_{step}",
                    reason=f"bench history step {step + 1}",
                    created_at=at,
                )
            )
    Customer.objects.bulk_create(customers, batch_size=5000)
    Subscription.objects.bulk_create(subscriptions, batch_size=5000)
    OneOffPurchase.objects.bulk_create(oneoffs, batch_size=5000)
    PlanChange.objects.bulk_create(changes, batch_size=5000)
    # The billing columns copied onto each user, by the code plan_refresh uses (one
    # batch of facts for the chunk), so that only the "drifted" users' plans drift.
    facts = facts_load(u.pk for u in created)
    for user in created:
        for name, value in billing_columns(facts[user.pk]).as_fields().items():
            setattr(user, name, value)
    User.objects.bulk_update(created, BILLING_FIELDS, batch_size=2000)
    report.users += len(created)
    report.customers += len(customers)
    report.subscriptions += len(subscriptions)
    report.oneoffs += len(oneoffs)
    report.plan_changes += len(changes)


def vacuum() -> None:
    """What autovacuum would soon do after the bulk load (visibility map, planner
    statistics), done now rather than in the middle of a measurement."""
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")


def webhook_customers(count: int, *, tag: str, progress: Progress) -> list[list[str]]:
    """`count` new customers who sign up and pay for a monthly plan in the sandbox's
    checkout; returns, per customer, the payloads of WEBHOOK_EVENTS exactly as the
    sandbox delivers them (the objects stay in the sandbox for the handlers to re-read)."""
    sequences: list[list[str]] = []
    for n in range(count):
        user = User.objects.create_user(f"{tag}{n:04d}@webhooks.bench.smartflow.test")
        plan = ("flowkit", "launchpack")[n % 2]
        session = checkout_session_create(user=user, plan=plan, interval="monthly")
        started = timezone.now()
        checkout_pay(session_id=session.id, card_number=CARD_OK)
        events = {
            row.data["type"]: row.data
            for row in StripeObject.objects.filter(type="event", inserted_at__gte=started)
        }
        # The same bytes the sandbox's delivery sends (devtools/stripe_sandbox/delivery.py).
        sequences.append(
            [json.dumps(store.render(events[kind]), indent=2) for kind in WEBHOOK_EVENTS]
        )
        if (n + 1) % 50 == 0:
            progress(f"{tag}: {n + 1}/{count} customers paid")
    return sequences


def renewal_customers(count: int, *, renewals: int, progress: Progress) -> list[list[str]]:
    """`count` new customers who pay a monthly plan in the sandbox's checkout and whose
    subscriptions the sandbox then renews `renewals` times (a new period, invoiced and
    paid, as on a renewal day); returns, per customer, the payloads of the renewals'
    `invoice.paid` events, as the sandbox delivers them. The checkout's own events are
    not sent: the storm is renewals only (dj-stripe re-reads the invoice and syncs the
    subscription it does not know yet, which is what a backlog replay would do)."""
    sequences: list[list[str]] = []
    for n in range(count):
        user = User.objects.create_user(f"renew{n:04d}@webhooks.bench.smartflow.test")
        session = checkout_session_create(
            user=user, plan=("flowkit", "launchpack")[n % 2], interval="monthly"
        )
        started = timezone.now()
        checkout_pay(session_id=session.id, card_number=CARD_OK)
        created = StripeObject.objects.get(
            type="event", inserted_at__gte=started, data__type="customer.subscription.created"
        )
        sub_id = created.data["data"]["object"]["id"]
        payloads = []
        for _ in range(renewals):
            renewed = timezone.now()
            subscription_renew(sub_id)
            paid = StripeObject.objects.get(
                type="event", inserted_at__gte=renewed, data__type="invoice.paid"
            )
            payloads.append(json.dumps(store.render(paid.data), indent=2))
        sequences.append(payloads)
        if (n + 1) % 100 == 0:
            progress(f"renewals: {n + 1}/{count} customers renewed {renewals} times")
    return sequences


def deliveries_discard() -> int:
    """Drop the deliveries the fixtures queued: the load generator sends those events,
    and the worker must only deliver what the app's own API calls cause during the run."""
    with transaction.atomic():
        Delivery.objects.filter(state=Delivery.State.PENDING).delete()
        discarded, _ = DBTaskResult.objects.filter(status=TaskResultStatus.READY).delete()
    return discarded
