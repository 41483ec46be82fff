"""Which plan a user has, and why.

The plan is always computed from the facts, never incremented: the highest of
  (a) a subscription that is active or trialing, or past_due while Stripe still retries
      its open invoice, within the grace period after the first failed attempt
      (billing/dunning.py: counted on Stripe's clock),
  (b) a paid, unrefunded one-off purchase (that plan for good) not under an open or
      lost dispute,
  (c) an active staff override,
else starter. `plan_refresh` stores the result on the user and writes the history.

Subscriptions are read from dj-stripe's `stripe_data` (its convenience helpers are
broken on current API versions: see docs/djstripe.md).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import connection, transaction
from django.db.models import CharField, F, Func, Max, Q, QuerySet, TextField
from django.db.models.fields.json import KT, KeyTransform
from django.utils import timezone
from djstripe.models import Customer, Subscription

from accounts.models import User
from billing.alerts import alert_record
from billing.disputes import disputes_load
from billing.dunning import (
    awaiting_authentication_load,
    decision_now,
    grace_remaining,
    renewal_invoices_load,
    still_retrying,
    stripe_now_load,
)
from billing.models import BillingAlert, OneOffPurchase, PlanChange, PlanOverride
from billing.plans import Plan, plan_rank
from billing.signals import plan_changed
from billing.subscriptions import DUNNING_STATUSES, LIVE_STATUSES, items_sold
from billing.tasks import plan_grace_recheck

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.models.sql.compiler import SQLCompiler

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Grant:
    plan: Plan
    why: str
    by_subscription: bool = False
    # What grants it, for the customer's account standing (billing/standing.py):
    # "subscription", "trial", "grace", "oneoff", "comp" or "kept"; and when it stops
    # granting, where that is known here (a comp's expiry, the grace's end).
    kind: str = ""
    ends_at: datetime | None = None


@dataclass
class Decision:
    plan: Plan
    why: str
    # Prices on live subscriptions that sell no known plan: the plan is then kept as it
    # is rather than guessed (and staff are told).
    unknown_prices: list[str] = field(default_factory=list)
    # A failed renewal keeps the plan for this long yet (on our clock): the plan is to be
    # decided again then, webhook or not.
    recheck_in: timedelta | None = None
    # Whether the plan is a live subscription's (not a one-off's, a comp's or kept).
    by_subscription: bool = False
    # Every grant that counts, the winning one first: what the standing reads to say
    # why the customer has the plan, until when, and what they keep after.
    grants: list[Grant] = field(default_factory=list)


@dataclass
class Facts:
    """Everything the decision reads, loaded in bulk by `facts_load`."""

    subscriptions: list[dict[str, Any]] = field(default_factory=list)
    oneoffs: list[OneOffPurchase] = field(default_factory=list)
    overrides: list[PlanOverride] = field(default_factory=list)
    # The invoice each past_due subscription's dunning is about (its open renewal, else
    # its latest invoice), by subscription id, and the newest Stripe time known for the
    # customer (billing/dunning.py).
    invoices: dict[str, dict[str, Any]] = field(default_factory=dict)
    stripe_now: datetime | None = None
    # Those of the invoices whose payment waits for 3-D Secure (not retried by Stripe).
    authenticating: set[str] = field(default_factory=set)
    # For the columns copied onto the user (`billing_columns`), not for the plan: each
    # subscription's creation time (in the order of `subscriptions`), the customers as
    # (created, id, livemode), and the newest PlanChange's time.
    subscriptions_created: list[datetime | None] = field(default_factory=list)
    customers: list[tuple[datetime | None, str, bool]] = field(default_factory=list)
    last_change_at: datetime | None = None


def _subscription_judge(
    sub: dict[str, Any], now: datetime, facts: Facts
) -> tuple[Grant | None, list[str], timedelta | None, str]:
    """What `sub` grants, its unknown prices, the grace left, and why it grants nothing
    ("" when it does) in staff's words: a plan that drops must not read "no active
    subscription" while the subscription is still past_due in Stripe."""
    status = sub.get("status")
    left = None
    if status in LIVE_STATUSES:
        why_status = status
    elif status in DUNNING_STATUSES:
        # Kept while Stripe still retries the renewal, and at most the grace period after
        # its first failed attempt, both read from Stripe's invoice; "now" is the later of
        # our clock and Stripe's newest time for this customer (billing/dunning.py says
        # why). A subscription whose invoice is not synced yet is not given the benefit.
        # The renewal's invoice, whatever else is open: an unpaid upgrade made since
        # becomes the latest invoice but moves no grace (billing/dunning.py).
        invoice = facts.invoices.get(sub.get("id") or "")
        if invoice is not None and invoice.get("status") == "paid":
            # The renewal was paid (a retry, 3-D Secure, the hosted page) after the
            # subscription was last read past_due: Stripe makes it active, and that event
            # can come after this one. The money is in: no grace, no drop.
            why_status = f"{status}, its renewal invoice paid"
            return _grant_of(sub, why_status)
        authenticating = invoice is not None and invoice["id"] in facts.authenticating
        left = (
            grace_remaining(
                invoice=invoice,
                now=now,
                stripe_now=facts.stripe_now,
                awaiting_authentication=authenticating,
            )
            if invoice
            else None
        )
        grace_days = settings.BILLING_PAST_DUE_GRACE_DAYS
        if left is None:
            if invoice is None:
                lapse = "its unpaid renewal invoice is not synced yet"
            elif not (still_retrying(invoice) or authenticating):
                lapse = "Stripe no longer retries its unpaid renewal"
            else:
                lapse = f"the {grace_days}-day grace after its failed renewal has ended"
            return None, [], None, f"subscription {sub.get('id')} {status}: {lapse}"
        collecting = "waiting for 3-D Secure" if authenticating else "Stripe retrying"
        why_status = f"past_due, {collecting}, in the {grace_days}-day grace period"
    else:
        # canceled, unpaid (Stripe gave up), incomplete, incomplete_expired, paused
        return None, [], None, f"subscription {sub.get('id')} {status}"

    grant, unknown, _, why_not = _grant_of(sub, why_status)
    return grant, unknown, left, why_not


def _grant_of(
    sub: dict[str, Any], why_status: str
) -> tuple[Grant | None, list[str], timedelta | None, str]:
    """The highest plan `sub` sells, granted for `why_status` (no grace)."""
    sold, unknown = items_sold(sub)
    if not sold:
        return None, unknown, None, f"subscription {sub.get('id')} sells no known plan"
    best = max((s.plan for s in sold), key=plan_rank)
    grant = Grant(best, f"subscription {sub.get('id')} ({why_status})", by_subscription=True)
    return grant, unknown, None, ""


def plan_decide(*, facts: Facts, current: str, now: datetime | None = None) -> Decision:
    """The plan the facts entitle to. Pure: reads nothing, writes nothing."""
    now = now or timezone.now()
    grants: list[Grant] = []
    unknown: list[str] = []
    recheck: list[timedelta] = []
    ended: list[str] = []
    for sub in facts.subscriptions:
        grant, sub_unknown, left, why_not = _subscription_judge(sub, now, facts)
        if why_not and sub.get("status") not in ("canceled", "incomplete_expired"):
            ended.insert(0, why_not)  # a live or dunning one first: it is the news
        elif why_not:
            ended.append(why_not)
        unknown += sub_unknown
        if grant:
            kind = "trial" if sub.get("status") == "trialing" else "subscription"
            grants.append(
                replace(
                    grant,
                    kind="grace" if left is not None else kind,
                    # On Stripe's clock, as the grace is counted (the sandbox's runs ahead).
                    ends_at=(
                        decision_now(now=now, stripe_now=facts.stripe_now) + left
                        if left is not None
                        else None
                    ),
                )
            )
        if grant and left is not None:
            recheck.append(left)
    for purchase in facts.oneoffs:
        if purchase.counts:
            grants.append(
                Grant(
                    Plan(purchase.plan),
                    f"one-off purchase {purchase.checkout_session_id}",
                    kind="oneoff",
                )
            )
    for override in facts.overrides:
        if override.revoked_at is None and (
            override.expires_at is None or override.expires_at > now
        ):
            until = (
                f" until {override.expires_at:%Y-%m-%d %H:%M} UTC" if override.expires_at else ""
            )
            grants.append(
                Grant(
                    Plan(override.plan),
                    f"staff override{until}: {override.reason}",
                    kind="comp",
                    ends_at=override.expires_at,
                )
            )
    if unknown:
        grants.append(
            Grant(Plan(current), f"kept: unknown price {', '.join(unknown)}", kind="kept")
        )
    if not grants:
        if ended:
            # The newest few: an account with years of ended subscriptions needs no list.
            return Decision(
                Plan.STARTER, "; ".join(ended[:2]) + "; no other subscription, purchase or override"
            )
        return Decision(Plan.STARTER, "no active subscription, purchase or override")
    # Ties go to the first grant: subscriptions, then purchases, then overrides.
    best = max(grants, key=lambda g: plan_rank(g.plan))
    return Decision(
        best.plan,
        best.why,
        unknown,
        min(recheck) if recheck else None,
        by_subscription=best.by_subscription,
        grants=[best, *(g for g in grants if g is not best)],
    )


# The keys of a subscription's Stripe JSON that the decision reads; the rest (often most
# of it) is left in the database.
# (Annotated under other names: Subscription has fields called items and customer.)
_SUBSCRIPTION_KEYS = {
    "stripe_status": KT("stripe_data__status"),
    "stripe_items": KeyTransform("items", "stripe_data"),
    "stripe_latest_invoice": KeyTransform("latest_invoice", "stripe_data"),
    "stripe_customer": KeyTransform("customer", "stripe_data"),
}


class _StripeDataKeyPg(Func):
    """PostgreSQL: an expression over one key of a dj-stripe row's `stripe_data`, its SQL
    built by `sql(data)` from the compiled column (subclasses say what it reads)."""

    def __init__(self, key: str) -> None:
        super().__init__(F("stripe_data"))
        self.key = key

    def as_sql(
        self,
        compiler: SQLCompiler,
        connection: BaseDatabaseWrapper,
        function: str | None = None,
        template: str | None = None,
        arg_joiner: str | None = None,
        **extra_context: Any,
    ) -> tuple[str, tuple[Any, ...]]:
        data, params = compiler.compile(self.source_expressions[0])
        return self.sql(data, tuple(params))

    def sql(self, data: str, params: tuple[Any, ...]) -> tuple[str, tuple[Any, ...]]:
        raise NotImplementedError


class _StripeIdPg(_StripeDataKeyPg):
    """PostgreSQL: the id of an expandable field of `stripe_data` as text, whether Stripe
    sent it as an id or as the expanded object."""

    output_field = CharField()

    def sql(self, data: str, params: tuple[Any, ...]) -> tuple[str, tuple[Any, ...]]:
        value = f"({data} -> %s)"
        sql = (
            f"(CASE jsonb_typeof({value}) WHEN 'object' THEN {value} ->> 'id' "
            f"ELSE {data} ->> %s END)"
        )
        return sql, (*params, self.key, *params, self.key, *params, self.key)


class _ItemPricesPg(_StripeDataKeyPg):
    """PostgreSQL: one key of every item's price (`id` or `lookup_key`), in Stripe's
    order, as a text array. A real item carries the whole Price (product, recurring,
    tiers, metadata); sending two short arrays instead of that JSON, and parsing no JSON
    for it, roughly halves what reading a batch's subscriptions costs reconcile_plans."""

    output_field = ArrayField(TextField())

    def sql(self, data: str, params: tuple[Any, ...]) -> tuple[str, tuple[Any, ...]]:
        items = f"({data} -> 'items' -> 'data')"
        # An unexpanded price is its id, a string.
        value = (
            "COALESCE(item -> 'price' ->> 'id', CASE jsonb_typeof(item -> 'price') "
            "WHEN 'string' THEN item ->> 'price' END)"
            if self.key == "id"
            else "item -> 'price' ->> %s"
        )
        sql = (
            f"ARRAY(SELECT {value} FROM jsonb_array_elements(CASE jsonb_typeof({items}) "
            f"WHEN 'array' THEN {items} ELSE '[]'::jsonb END) WITH ORDINALITY AS items(item, "
            "position) ORDER BY position)"
        )
        key_params = () if self.key == "id" else (self.key,)
        return sql, (*key_params, *params, *params)


def _subscription_keys() -> dict[str, Any]:
    """The expressions that read `_SUBSCRIPTION_KEYS`; on PostgreSQL cut down in SQL
    (the items as their prices' ids and lookup keys: `_subscription_data` puts them back
    in the shape `items_sold` reads)."""
    if connection.vendor != "postgresql":
        return _SUBSCRIPTION_KEYS
    return {
        "stripe_status": KT("stripe_data__status"),
        "stripe_price_ids": _ItemPricesPg("id"),
        "stripe_lookup_keys": _ItemPricesPg("lookup_key"),
        "stripe_latest_invoice": _StripeIdPg("latest_invoice"),
        "stripe_customer": _StripeIdPg("customer"),
    }


def _subscription_data(sub_id: str, values: tuple[Any, ...] | list[Any]) -> dict[str, Any]:
    """A row of `_subscription_keys()` (the values in its order) as the part of the
    subscription's JSON it holds. Built straight from the row: this runs for every
    subscription in a reconcile_plans pass."""
    if len(values) == 4:  # stripe_items: the items' JSON as it is
        status, items, latest_invoice, customer = values
    else:
        status, price_ids, lookup_keys, latest_invoice, customer = values
        items = {
            "data": [
                {"price": {"id": p, "lookup_key": k}}
                for p, k in zip(price_ids, lookup_keys, strict=True)
            ]
        }
    return {
        "id": sub_id,
        "status": status,
        "latest_invoice": latest_invoice,
        "customer": customer,
        "items": items,
    }


def facts_load(user_ids: Iterable[int]) -> dict[int, Facts]:
    """Load the facts of many users in five queries, whatever their number (eight when
    some are past_due: their renewal invoices, and Stripe's newest time for them, their
    events' and their test clocks', nine when some are on a test clock; one more when one
    of those invoices is no longer retried: whether it waits for 3-D Secure; one more when
    some have one-off purchases: their disputes)."""
    ids = list(user_ids)
    return _facts_load(lambda field: Q(**{f"{field}__in": ids}))


def facts_load_between(after_pk: int, upto_pk: int) -> dict[int, Facts]:
    """`facts_load` for the users whose pk is in (after_pk, upto_pk] (a keyset batch),
    with two differences that make a pass over every user cheap (reconcile_plans):

    - a range instead of an IN list of the batch's ids: building, binding and planning a
      2,000-id IN list five times a batch was most of the pass's time;
    - only users with a subscription, customer, purchase or override have an entry, and
      `last_change_at` is left unset: `last_changes_drifted_between` compares it in SQL.
    """
    return _facts_load(
        lambda field: Q(**{f"{field}__gt": after_pk, f"{field}__lte": upto_pk}),
        last_changes=False,
    )


class LastChangeDrift(NamedTuple):
    stored: datetime | None
    computed: datetime | None


def last_changes_drifted_between(after_pk: int, upto_pk: int) -> dict[int, LastChangeDrift]:
    """The users in (after_pk, upto_pk] whose copied `last_plan_change_at` is not the time
    of their newest PlanChange (None: they have none), with both times. Compared in the
    database, so that a batch sends no timestamps for the users whose copy is right."""
    quote = connection.ops.quote_name
    users, changes = quote(User._meta.db_table), quote(PlanChange._meta.db_table)
    # IS DISTINCT FROM: NULL-safe (PostgreSQL; SQLite 3.39+).
    sql = (
        f"SELECT u.id FROM {users} u LEFT JOIN (SELECT user_id, MAX(created_at) AS last "
        f"FROM {changes} WHERE user_id > %s AND user_id <= %s GROUP BY user_id) c "
        "ON c.user_id = u.id "
        "WHERE u.id > %s AND u.id <= %s AND u.last_plan_change_at IS DISTINCT FROM c.last"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [after_pk, upto_pk, after_pk, upto_pk])
        drifted = [row[0] for row in cursor.fetchall()]
    if not drifted:
        return {}
    # Rare: the times themselves, typed by the ORM, for the report.
    stored = dict(User.objects.filter(pk__in=drifted).values_list("pk", "last_plan_change_at"))
    newest = dict(
        PlanChange.objects.filter(user_id__in=drifted)
        .values("user_id")
        .annotate(last=Max("created_at"))
        .values_list("user_id", "last")
    )
    return {pk: LastChangeDrift(stored.get(pk), newest.get(pk)) for pk in drifted}


def _facts_load(users: Callable[[str], Q], *, last_changes: bool = True) -> dict[int, Facts]:
    """`users(field)`: the condition that `field` (a user id) is one of the users."""
    facts: dict[int, Facts] = defaultdict(Facts)
    keys = _subscription_keys()
    subscriptions = (
        Subscription.objects.filter(users("customer__subscriber_id"))
        .annotate(**keys)
        .values_list("customer__subscriber_id", "id", "created", *keys)
    )
    past_due: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for user_id, sub_id, created, *values in value_rows(subscriptions):
        data = _subscription_data(sub_id, values)
        facts[user_id].subscriptions.append(data)
        facts[user_id].subscriptions_created.append(created)
        if data.get("status") in DUNNING_STATUSES:
            past_due[user_id].append(data)
    if past_due:
        invoices = renewal_invoices_load(sub for subs in past_due.values() for sub in subs)
        newest = stripe_now_load(
            _stripe_id(sub.get("customer")) for subs in past_due.values() for sub in subs
        )
        authenticating = awaiting_authentication_load(invoices.values())
        for user_id, subs in past_due.items():
            for sub in subs:
                invoice = invoices.get(sub["id"])
                if invoice:
                    facts[user_id].invoices[sub["id"]] = invoice
                    if invoice["id"] in authenticating:
                        facts[user_id].authenticating.add(invoice["id"])
                known = newest.get(_stripe_id(sub.get("customer")))
                before = facts[user_id].stripe_now
                if known and (before is None or known > before):
                    facts[user_id].stripe_now = known
    oneoffs = list(OneOffPurchase.objects.filter(users("user_id"), refunded_at__isnull=True))
    disputes = disputes_load(p.payment_intent_id for p in oneoffs if p.payment_intent_id)
    for purchase in oneoffs:
        if purchase.payment_intent_id in disputes:
            # Stripe's word as dj-stripe synced it, even when the dispute's events came
            # before the purchase was recorded (billing/disputes.py).
            purchase.dispute_status = disputes[purchase.payment_intent_id]
        facts[purchase.user_id].oneoffs.append(purchase)
    for override in PlanOverride.objects.filter(PlanOverride.active_q(), users("user_id")):
        facts[override.user_id].overrides.append(override)
    customers = Customer.objects.filter(users("subscriber_id")).values_list(
        "subscriber_id", "id", "livemode", "created"
    )
    for user_id, customer_id, livemode, created in value_rows(customers):
        facts[user_id].customers.append((created, customer_id, livemode))
    if last_changes:
        last_change_rows = (
            PlanChange.objects.filter(users("user_id"))
            .values("user_id")
            .annotate(last=Max("created_at"))
            .values_list("user_id", "last")
        )
        for user_id, last in last_change_rows:
            facts[user_id].last_change_at = last
    return facts


@dataclass(frozen=True)
class BillingColumns:
    """The billing facts copied onto the user for the admin (accounts.User's fields)."""

    billing_status: str
    stripe_customer_id: str
    stripe_customer_livemode: bool | None
    last_plan_change_at: datetime | None

    @classmethod
    def of_user(cls, user: User) -> BillingColumns:
        return cls(**{name: getattr(user, name) for name in BILLING_FIELDS})

    def as_fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in BILLING_FIELDS}


BILLING_FIELDS = (
    "billing_status",
    "stripe_customer_id",
    "stripe_customer_livemode",
    "last_plan_change_at",
)
_NEVER = datetime.min.replace(tzinfo=UTC)


def billing_columns(facts: Facts) -> BillingColumns:
    """What the user's copied columns should say. Pure, like `plan_decide`. "Latest" is
    by Stripe's creation time, the id breaking ties, so that every run picks the same."""
    status = ""
    if len(facts.subscriptions) == 1:  # most users: the latest of one, without max()
        status = facts.subscriptions[0].get("status") or ""
    elif facts.subscriptions:
        _, _, latest = max(
            zip(
                facts.subscriptions_created,
                (s["id"] for s in facts.subscriptions),
                facts.subscriptions,
                strict=True,
            ),
            key=lambda row: (row[0] or _NEVER, row[1]),
        )
        status = latest.get("status") or ""
    customer_id, livemode = "", None
    if len(facts.customers) == 1:
        _, customer_id, livemode = facts.customers[0]
    elif facts.customers:
        _, customer_id, livemode = max(facts.customers, key=lambda c: (c[0] or _NEVER, c[1]))
    return BillingColumns(status, customer_id, livemode, facts.last_change_at)


def value_rows(rows: QuerySet[Any, Any]) -> list[tuple[Any, ...]]:
    """A `values_list` queryset's rows. On PostgreSQL straight from the cursor: psycopg
    already returns these columns as Python values (text, bool, text arrays, aware
    datetimes), and Django's per-row machinery cost reconcile_plans more than the query.
    SQLite needs Django's converters (its datetimes are text)."""
    if connection.vendor != "postgresql":
        return list(rows)
    from psycopg import adapters
    from psycopg.postgres import types
    from psycopg.pq import Format

    sql, params = rows.query.sql_with_params()
    loader = adapters.get_loader(types["timestamptz"].oid, Format.TEXT)
    with connection.cursor() as cursor:
        # psycopg's own C loader for timestamptz instead of Django's Python subclass of
        # the Python one (which only sets tzinfo to the connection's zone: both give the
        # same instant, in UTC here). Parsing 75,000 times was a fifth of a full
        # reconcile_plans in its profile.
        cursor.cursor.adapters.register_loader("timestamptz", loader)
        cursor.execute(sql, params)
        fetched: list[tuple[Any, ...]] = cursor.fetchall()
        return fetched


def _stripe_id(value: Any) -> str:
    return value.get("id", "") if isinstance(value, dict) else (value or "")


def plan_compute(user: User, *, now: datetime | None = None) -> Decision:
    """Why `user` is on the plan they should be on (not necessarily the stored one)."""
    return plan_decide(facts=facts_load([user.pk])[user.pk], current=user.plan, now=now)


def unknown_prices_record(prices: list[str], *, stripe_event_id: str) -> None:
    for price_id in prices:
        logger.warning("Price %s sells no known plan; plan left unchanged", price_id)
        alert, created = alert_record(
            kind=BillingAlert.Kind.UNKNOWN_PRICE,
            stripe_id=price_id,
            detail="A subscription uses a price that maps to no plan.",
            stripe_event_id=stripe_event_id,
        )
        if not created:
            BillingAlert.objects.filter(pk=alert.pk).update(
                seen_count=F("seen_count") + 1,
                last_seen_at=timezone.now(),
                stripe_event_id=stripe_event_id or alert.stripe_event_id,
            )


def plan_refresh(
    *,
    user: User,
    source: str,
    stripe_event_id: str = "",
    actor: User | None = None,
    reason: str = "",
    notify: bool | None = None,
) -> PlanChange | None:
    """Recompute `user`'s plan and store it; returns the PlanChange, or None if unchanged.

    Also the only writer of the billing columns copied onto the user (`billing_columns`:
    status of the latest subscription, newest customer, last plan change), written in
    the same UPDATE as the plan, and only when something differs.

    Safe to run any number of times. The user row is locked so that concurrent webhooks
    for one customer decide one after the other. `notify` goes out with plan_changed:
    None (the default) lets billing.messages decide what the customer is told of the
    change; staff pass True or False, reconcile False (silence).
    """
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        return _refresh_locked(
            locked,
            facts_load([locked.pk])[locked.pk],
            user=user,
            source=source,
            stripe_event_id=stripe_event_id,
            actor=actor,
            reason=reason,
            notify=notify,
        )


def plans_refresh(*, user_ids: Iterable[int], source: str, notify: bool | None = None) -> int:
    """`plan_refresh` for many users in one transaction; returns how many changed plan.

    The users are locked in one statement, in pk order (the order any two callers lock
    them in, so two of these cannot deadlock), and their facts loaded in five; each is
    decided as `plan_refresh` decides, and the writes are made together: one UPDATE of
    the changed users, one INSERT of their PlanChanges, then `plan_changed` for each, in
    pk order. For reconcile_plans, whose per-user transactions, locks, fact queries and
    then per-user UPDATE and INSERT were most of a fix's cost.
    """
    with transaction.atomic():
        locked = list(User.objects.select_for_update().filter(pk__in=list(user_ids)).order_by("pk"))
        facts = facts_load(u.pk for u in locked)
        now = timezone.now()
        outcomes = [
            _refresh_decide(user, facts[user.pk], source=source, notify=notify, changed_at=now)
            for user in locked
        ]
        rows = [o.locked for o in outcomes if o.write]
        for row in rows:
            row.updated_at = now  # auto_now, which bulk_update does not apply
        User.objects.bulk_update(rows, ["plan", *BILLING_FIELDS, "updated_at"], batch_size=500)
        changed = [o for o in outcomes if o.change is not None]
        PlanChange.objects.bulk_create([o.change for o in changed if o.change is not None])
        for outcome in changed:
            _change_announce(outcome)
    return len(changed)


@dataclass
class _Outcome:
    """What `_refresh_decide` decided of one locked user: `locked` already carries the new
    plan and columns; `write` says whether its row must be written, `change` is the
    PlanChange to insert (None: the plan stays) and `notify` what plan_changed says."""

    locked: User
    write: bool
    change: PlanChange | None
    notify: bool | None


def _refresh_decide(
    locked: User,
    facts: Facts,
    *,
    source: str,
    stripe_event_id: str = "",
    actor: User | None = None,
    reason: str = "",
    notify: bool | None = None,
    changed_at: datetime | None = None,
) -> _Outcome:
    """Decide `locked`'s plan and columns from `facts` (loaded after the lock) and set
    them on it, writing nothing of the user yet (alerts and the grace recheck are
    recorded here). `changed_at`: the PlanChange's time, also the copied last change."""
    decision = plan_decide(facts=facts, current=locked.plan)
    columns = billing_columns(facts)
    unknown_prices_record(decision.unknown_prices, stripe_event_id=stripe_event_id)
    if decision.recheck_in is not None:
        _grace_end_schedule(user_id=locked.pk, delay=decision.recheck_in)
    old_plan = locked.plan
    why = decision.why
    if source == PlanChange.Source.INVOICE and _subscription_lowered(facts, decision, old_plan):
        # An invoice lowers no plan that a live subscription still grants: the
        # subscription's price did (a scheduled downgrade taking effect at the renewal,
        # whose invoice event may come before the subscription's).
        source = PlanChange.Source.SUBSCRIPTION
        why = f"the subscription's price changed to a lower plan; now: {why}"
    if decision.plan == old_plan:
        at = None
    else:
        at = changed_at or timezone.now()
        columns = replace(columns, last_plan_change_at=at)
    write = at is not None or columns != BillingColumns.of_user(locked)
    for name, value in columns.as_fields().items():
        setattr(locked, name, value)
    locked.plan = decision.plan
    if at is None:
        return _Outcome(locked, write, None, notify)
    change = PlanChange(
        user=locked,
        old_plan=old_plan,
        new_plan=decision.plan,
        source=source,
        stripe_event_id=stripe_event_id,
        actor=actor,
        reason=reason or why,
        created_at=at,
    )
    return _Outcome(locked, write, change, notify)


def _subscription_lowered(facts: Facts, decision: Decision, old_plan: str) -> bool:
    """Whether a live subscription now grants a lower paid plan than `old_plan`, which
    no one-off or comp (current or past) could have given: its price was lowered."""
    return (
        decision.by_subscription
        and plan_rank(decision.plan) < plan_rank(old_plan)
        and not any(p.plan == old_plan for p in facts.oneoffs)
        and not any(o.plan == old_plan for o in facts.overrides)
    )


def _change_announce(outcome: _Outcome) -> None:
    """Log a stored PlanChange and send plan_changed (in the writer's transaction)."""
    change = outcome.change
    assert change is not None
    logger.info(
        "Plan of user %s: %s -> %s (%s, %s)",
        change.user_id,
        change.old_plan,
        change.new_plan,
        change.source,
        change.reason,
    )
    plan_changed.send(sender=PlanChange, plan_change=change, notify=outcome.notify)


def _refresh_locked(
    locked: User,
    facts: Facts,
    *,
    user: User,
    source: str,
    stripe_event_id: str = "",
    actor: User | None = None,
    reason: str = "",
    notify: bool | None = None,
) -> PlanChange | None:
    """The body of `plan_refresh`: `locked` is the user's row, locked in this transaction,
    and `facts` its facts, loaded after the lock; `user` is the caller's instance, given the
    stored values."""
    outcome = _refresh_decide(
        locked,
        facts,
        source=source,
        stripe_event_id=stripe_event_id,
        actor=actor,
        reason=reason,
        notify=notify,
    )
    if outcome.write:
        locked.save(update_fields=["plan", *BILLING_FIELDS, "updated_at"])
    user.plan = locked.plan
    for name in BILLING_FIELDS:
        setattr(user, name, getattr(locked, name))
    if outcome.change is None:
        return None
    outcome.change.save(force_insert=True)
    _change_announce(outcome)
    return outcome.change


def _grace_end_schedule(*, user_id: int, delay: timedelta) -> None:
    """Decide again when the failed-payment grace runs out, so the plan drops then even
    if no webhook comes. Enqueued in this transaction (the task row rolls back with it)."""
    # A second past the end, so that the recheck is not a hair early.
    run_after = timezone.now() + delay + timedelta(seconds=1)
    plan_grace_recheck.using(run_after=run_after).enqueue(user_id)
