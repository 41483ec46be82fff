"""Whether a customer is in dunning (a renewal payment failing or waiting for 3-D Secure),
what they owe, when Stripe tries again, what they should do, and how long the plan is kept.

Read from dj-stripe's synced rows (Subscription, Invoice, PaymentIntent, Event), never
from Stripe, so the banner on every page and the staff pages can ask cheaply. The grace
of a failed renewal is counted on Stripe's clock, from Stripe's timestamps:

- The first failed attempt is the invoice's `status_transitions.finalized_at`: Stripe
  finalizes an automatically collected invoice when it attempts the payment, and the
  sandbox does the same (its `effective_at` equals it; `created` is the fallback, an hour
  earlier at most).
- "Now" is the later of our clock and the newest Stripe time we know for the customer
  (the `created` of the newest stored event about them). Against real Stripe the two
  clocks agree; against the sandbox, whose clock `stripe_sandbox advance` moves ahead of
  ours, every event it sends carries its own time, so a retry on day 8 ends a 7-day grace
  whatever our clock says. Comparing Stripe times with Stripe times gives the sandbox and
  Stripe the same answer; taking the later of the two keeps a late or replayed old event
  from bringing back a grace that already ran out (the newest time never goes back).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from django.conf import settings
from django.db.models import Max, Q
from django.utils import timezone
from djstripe.models import (
    Customer,
    Event,
    Invoice,
    PaymentIntent,
    PaymentMethod,
    Subscription,
)

from billing.money import money
from billing.stripe_layout import invoice_subscription_id
from billing.subscriptions import DUNNING_STATUSES

FAILED: Final = "failed"
ACTION_REQUIRED: Final = "action_required"


def _ts(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), tz=UTC) if value else None


def _id(value: Any) -> str:
    return value.get("id", "") if isinstance(value, Mapping) else (value or "")


def first_failure_at(invoice: Mapping[str, Any]) -> datetime | None:
    """When Stripe first tried (and failed) to collect `invoice`, on Stripe's clock."""
    transitions = invoice.get("status_transitions") or {}
    return _ts(transitions.get("finalized_at") or invoice.get("created"))


def grace_ends_at(invoice: Mapping[str, Any]) -> datetime | None:
    """BILLING_PAST_DUE_GRACE_DAYS after the first failed attempt, on Stripe's clock."""
    first = first_failure_at(invoice)
    return first + timedelta(days=settings.BILLING_PAST_DUE_GRACE_DAYS) if first else None


def still_retrying(invoice: Mapping[str, Any] | None) -> bool:
    """Stripe will attempt this open invoice again (it has a `next_payment_attempt`)."""
    return bool(invoice and invoice.get("status") == "open" and invoice.get("next_payment_attempt"))


def decision_now(*, now: datetime, stripe_now: datetime | None) -> datetime:
    """The moment a grace is judged at: the later of our clock and Stripe's newest time."""
    return max(now, stripe_now) if stripe_now else now


TEST_CLOCK_READY = "test_helpers.test_clock.ready"


def stripe_now_load(
    customer_ids: Iterable[str], *, clocks: Mapping[str, str] | None = None
) -> dict[str, datetime]:
    """The newest Stripe time known per customer: the `created` of their newest stored
    event, or, for a customer on a test clock (`customer.test_clock`, test mode only),
    the `frozen_time` of that clock's newest `test_helpers.test_clock.ready` event, if
    later. `clocks`: each customer's test clock, when the caller has read them (else one
    more query). One query, two when some customers are on a test clock; callers ask
    only for customers in dunning (few)."""
    ids = [c for c in customer_ids if c]
    if not ids:
        return {}
    rows = (
        Event.objects.filter(data__object__customer__in=ids)
        .values("data__object__customer")
        .annotate(latest=Max("created"))
    )
    found = {row["data__object__customer"]: row["latest"] for row in rows if row["latest"]}
    if clocks is None:
        clocks = dict(
            Customer.objects.filter(
                id__in=ids, livemode=False, stripe_data__test_clock__isnull=False
            ).values_list("id", "stripe_data__test_clock")
        )
    clocks = {c: clock for c, clock in clocks.items() if isinstance(clock, str) and clock}
    if clocks:
        frozen: dict[str, datetime] = {}
        ready = Event.objects.filter(
            type=TEST_CLOCK_READY, data__object__id__in=sorted(set(clocks.values()))
        ).values_list("data__object__id", "data__object__frozen_time")
        for clock, when in ready:
            at = _ts(when)
            if at and (clock not in frozen or at > frozen[clock]):
                frozen[clock] = at
        for customer_id, clock in clocks.items():
            at = frozen.get(clock)
            if at and (customer_id not in found or at > found[customer_id]):
                found[customer_id] = at
    return found


# The billing reasons of the invoices that renew a subscription: the one dunning is about.
RENEWAL_REASONS = frozenset({"subscription_cycle", "subscription_threshold"})


def renewal_invoices_load(
    subscriptions: Iterable[Mapping[str, Any]],
) -> dict[str, dict[str, Any]]:
    """The invoice each past_due subscription's dunning is about, by subscription id, in
    one query: its oldest open renewal invoice, else its latest invoice. Not simply the
    latest: an unpaid upgrade (or any other invoice) made after the failed renewal becomes
    the subscription's `latest_invoice`, but the grace runs from the renewal's failure."""
    subs = {_id(sub.get("id")): _id(sub.get("latest_invoice")) for sub in subscriptions}
    subs = {sub_id: latest for sub_id, latest in subs.items() if sub_id}
    if not subs:
        return {}
    ids = sorted(subs)
    of_subs = Q(stripe_data__parent__subscription_details__subscription__in=ids) | Q(
        stripe_data__subscription__in=ids  # the layout before API version 2025-03-31
    )
    rows = Invoice.objects.filter(
        Q(id__in=[latest for latest in subs.values() if latest])
        | (Q(stripe_data__status="open") & of_subs)
    ).values_list("id", "stripe_data")
    invoices = dict(rows)
    found: dict[str, dict[str, Any]] = {}
    for invoice in sorted(invoices.values(), key=lambda i: int(i.get("created") or 0)):
        sub_id = invoice_subscription_id(invoice)
        if (
            sub_id in subs
            and sub_id not in found
            and invoice.get("status") == "open"
            and invoice.get("billing_reason") in RENEWAL_REASONS
        ):
            found[sub_id] = invoice
    for sub_id, latest in subs.items():
        if sub_id not in found and latest in invoices:
            found[sub_id] = invoices[latest]
    return found


@dataclass(frozen=True)
class Dunning:
    """A customer's failing renewal and what they should do about it."""

    user_id: int
    kind: Literal["failed", "action_required"]
    subscription_id: str
    invoice_id: str
    amount: int  # minor units still due
    currency: str
    attempt_count: int
    first_failed_at: datetime | None
    next_attempt_at: datetime | None  # None: Stripe will not try again by itself
    grace_ends_at: datetime | None
    hosted_invoice_url: str
    # The customer has set a new default card since the last failed attempt: the next
    # retry uses it, or they can pay now with it. ("Update your card" would be stale.)
    card_updated: bool = False
    # Whether the subscription still holds its plan (billing/entitlements.py's rule: in
    # the grace and Stripe still retrying). Once not, the plan is lost: the customer is
    # told that, and not asked to pay for it.
    plan_kept: bool = True

    @property
    def amount_display(self) -> str:
        return money(self.amount, self.currency)

    @property
    def access_ends_at(self) -> datetime | None:
        """When the plan's features stop unless the renewal is paid: the grace's end."""
        return self.grace_ends_at

    @property
    def retry_before_access_ends(self) -> datetime | None:
        """Stripe's next attempt, if it comes while the plan is still kept (a retry after
        the features stop is no promise worth making: the plan is gone by then)."""
        at, ends = self.next_attempt_at, self.grace_ends_at
        if at is None or (ends is not None and at >= ends):
            return None
        return at

    @property
    def needs_authentication(self) -> bool:
        return self.kind == ACTION_REQUIRED


def dunning_load(user_ids: Iterable[int]) -> dict[int, Dunning]:
    """The dunning state of many users: one query for those not in dunning (nearly
    everyone), at most six for those who are, whatever their number."""
    ids = list(user_ids)
    rows = list(
        Subscription.objects.filter(
            customer__subscriber_id__in=ids, stripe_data__status__in=sorted(DUNNING_STATUSES)
        ).values_list(
            "customer__subscriber_id",
            "stripe_data",
            "customer_id",
            # The card Stripe's retries use (the customer's invoice default).
            "customer__stripe_data__invoice_settings__default_payment_method",
            "customer__stripe_data__test_clock",
        )
    )
    if not rows:
        return {}
    subs = [(user_id, sub) for user_id, sub, _, _, _ in rows]
    default_cards = {c: pm for _, _, c, pm, _ in rows if isinstance(pm, str) and pm}
    clocks = {c: clock for _, _, c, _, clock in rows if isinstance(clock, str) and clock}
    renewals = renewal_invoices_load(sub for _, sub in subs)
    open_invoices = {k: v for k, v in renewals.items() if v.get("status") == "open"}
    customers = {c for invoice in open_invoices.values() if (c := invoice.get("customer"))}
    waiting, failed = _payments_load(customers)
    updated = _card_updated_since_failure(default_cards, failed)
    stripe_now = stripe_now_load(customers, clocks=clocks)
    found: dict[int, Dunning] = {}
    for user_id, sub in subs:
        invoice = open_invoices.get(_id(sub.get("id")))
        if invoice is None or user_id in found:
            continue
        first = first_failure_at(invoice)
        since = waiting.get(invoice["customer"], [])
        authenticate = any(created >= (first or created) for created in since)
        # A renewal waiting for 3-D Secure is not retried, yet keeps the plan in the
        # grace, as plan_decide keeps it (billing/entitlements.py).
        left = grace_remaining(
            invoice=invoice,
            stripe_now=stripe_now.get(invoice["customer"]),
            awaiting_authentication=authenticate,
        )
        found[user_id] = Dunning(
            user_id=user_id,
            kind=ACTION_REQUIRED if authenticate else FAILED,
            subscription_id=sub.get("id", ""),
            invoice_id=invoice["id"],
            amount=int(invoice.get("amount_remaining") or invoice.get("amount_due") or 0),
            currency=invoice.get("currency") or settings.BILLING_CURRENCY,
            attempt_count=int(invoice.get("attempt_count") or 0),
            first_failed_at=first,
            next_attempt_at=_ts(invoice.get("next_payment_attempt")),
            grace_ends_at=grace_ends_at(invoice),
            hosted_invoice_url=invoice.get("hosted_invoice_url") or "",
            card_updated=invoice["customer"] in updated,
            plan_kept=left is not None,
        )
    return found


def awaiting_authentication_load(invoices: Iterable[Mapping[str, Any]]) -> set[str]:
    """The open invoices, among `invoices`, whose payment waits for the customer's 3-D
    Secure. Stripe does not retry such a payment on its schedule ("it waits to be
    authenticated"): `next_payment_attempt` is null, yet Stripe has not given up. One
    query, only when some open invoice has no next attempt."""
    stopped = [
        i for i in invoices if i.get("status") == "open" and not i.get("next_payment_attempt")
    ]
    if not stopped:
        return set()
    waiting, _ = _payments_load({c for i in stopped if (c := i.get("customer"))})
    return {
        i["id"]
        for i in stopped
        if any(
            created >= (first_failure_at(i) or created)
            for created in waiting.get(i.get("customer") or "", [])
        )
    }


def _payments_load(
    customer_ids: set[str],
) -> tuple[dict[str, list[datetime]], dict[str, datetime]]:
    """From one query of the customers' PaymentIntents: when each one now waiting for
    3-D Secure was created, and each customer's latest failed payment. (On this API
    version an invoice no longer names its PaymentIntent: `invoice.payments`. A
    PaymentIntent of the customer waiting since the invoice's attempt is its one.)"""
    ids = [c for c in customer_ids if c]
    waiting: dict[str, list[datetime]] = {}
    failed: dict[str, datetime] = {}
    if not ids:
        return waiting, failed
    rows = PaymentIntent.objects.filter(
        customer_id__in=ids,
        stripe_data__status__in=["requires_action", "requires_payment_method"],
    ).values_list("customer_id", "stripe_data")
    for customer_id, pi in rows:
        created = _ts(pi.get("created"))
        if created is None:
            continue
        if pi.get("status") == "requires_action":
            waiting.setdefault(customer_id, []).append(created)
        elif customer_id not in failed or created > failed[customer_id]:
            failed[customer_id] = created
    return waiting, failed


def _card_updated_since_failure(
    default_cards: Mapping[str, str], failed: Mapping[str, datetime]
) -> set[str]:
    """The customers whose default card was added after their latest failed payment:
    one query, only for customers with a failed payment."""
    wanted = {pm for c, pm in default_cards.items() if c in failed}
    if not wanted:
        return set()
    added = {
        pm_id: _ts(data.get("created"))
        for pm_id, data in PaymentMethod.objects.filter(id__in=wanted).values_list(
            "id", "stripe_data"
        )
    }
    return {
        customer_id
        for customer_id, pm_id in default_cards.items()
        if customer_id in failed and (when := added.get(pm_id)) and when > failed[customer_id]
    }


def dunning_for(user: Any) -> Dunning | None:
    """`user`'s failing renewal, or None (anonymous users and everyone paid up)."""
    if not getattr(user, "is_authenticated", False):
        return None
    return dunning_load([user.pk]).get(user.pk)


def grace_remaining(
    *,
    invoice: Mapping[str, Any],
    now: datetime | None = None,
    stripe_now: datetime | None = None,
    awaiting_authentication: bool = False,
) -> timedelta | None:
    """How long the plan is still kept for this failing invoice (None: not kept).
    `awaiting_authentication`: its payment waits for the customer's 3-D Secure, which
    Stripe does not retry (`next_payment_attempt` null) but still collects."""
    ends = grace_ends_at(invoice)
    if not (still_retrying(invoice) or awaiting_authentication) or ends is None:
        return None
    left = ends - decision_now(now=now or timezone.now(), stripe_now=stripe_now)
    return left if left > timedelta(0) else None
