from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any, NamedTuple

from django.core.management.base import BaseCommand
from django.utils import timezone

from accounts.models import User
from billing.duplicates import duplicate_alert_record, duplicates_find
from billing.entitlements import (
    BILLING_FIELDS,
    BillingColumns,
    Decision,
    Facts,
    LastChangeDrift,
    billing_columns,
    facts_load_between,
    last_changes_drifted_between,
    plan_decide,
    plans_refresh,
    value_rows,
)
from billing.models import PlanChange
from billing.speedups import heap_frozen

BATCH = 2000
# What is read of every user: the copied last plan change is compared in SQL instead
# (last_changes_drifted_between). The bench's ceiling scan reads the same.
USER_COLUMNS = (
    "pk",
    "email",
    "plan",
    "billing_status",
    "stripe_customer_id",
    "stripe_customer_livemode",
)


class Batch(NamedTuple):
    """One keyset batch of users, with everything the decision reads of them."""

    rows: list[tuple[Any, ...]]
    facts: dict[int, Facts]
    last_drifted: dict[int, LastChangeDrift]


def _batch_load(after_pk: int) -> Batch:
    """The BATCH users after `after_pk` by pk (keyset pagination: the same few queries
    for every batch, the users read as tuples), and for their pk range the keys of the
    Stripe JSON and the other facts the decision reads, and whose copied last change is
    wrong (compared in SQL)."""
    rows = value_rows(
        User.objects.filter(pk__gt=after_pk).order_by("pk").values_list(*USER_COLUMNS)[:BATCH]
    )
    if not rows:
        return Batch([], {}, {})
    upto_pk = rows[-1][0]
    return Batch(
        rows,
        facts_load_between(after_pk, upto_pk),
        last_changes_drifted_between(after_pk, upto_pk),
    )


def _batches() -> Iterator[Batch]:
    """Every batch of users, in pk order."""
    after_pk = 0
    while (batch := _batch_load(after_pk)).rows:
        yield batch
        after_pk = batch.rows[-1][0]


class Command(BaseCommand):
    help = (
        "Recompute every user's plan from dj-stripe's data, one-off purchases and staff "
        "overrides, and the billing columns copied onto the user (billing status, Stripe "
        "customer, last plan change); print the drift (user, stored, computed, why) and fix "
        "it with source 'reconcile'. --dry-run only reports. Progress goes to stderr after "
        "every batch. Also sweeps expired overrides (they no longer count)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Report, change nothing.")

    def handle(self, *args: Any, dry_run: bool = False, **options: Any) -> None:
        with heap_frozen():
            self._reconcile(dry_run=dry_run)

    def _reconcile(self, *, dry_run: bool) -> None:
        total = User.objects.count()
        seen = drift = fixed = 0
        # Drifted users wait to be fixed until BATCH of them are found (or the pass ends):
        # a fix reads its users' facts again under their locks, at a fixed number of
        # queries for any number of users, so a few per batch cost as much as thousands.
        pending: list[int] = []
        # Most users have no subscription, customer, purchase or override: their plan is
        # what plan_decide says of no facts (pure, so asked once per stored plan) and
        # their columns what billing_columns says, with their own last change.
        nothing = Facts()
        no_facts_decisions: dict[str, Decision] = {}
        no_facts_columns = billing_columns(nothing)
        no_facts_copy = (
            no_facts_columns.billing_status,
            no_facts_columns.stripe_customer_id,
            no_facts_columns.stripe_customer_livemode,
        )
        for batch in _batches():
            rows, facts, last_drifted = batch.rows, batch.facts, batch.last_drifted
            now = timezone.now()  # one clock reading a batch: plan_decide's "now"
            for pk, email, plan, status, customer_id, livemode in rows:
                # A user missing from last_drifted has the right copy of the last change.
                last = last_drifted.get(pk)
                user_facts = facts.get(pk)
                if user_facts is None:
                    decision = no_facts_decisions.get(plan)
                    if decision is None:
                        decision = plan_decide(facts=nothing, current=plan, now=now)
                        no_facts_decisions[plan] = decision
                    if (
                        last is None
                        and decision.plan == plan
                        and (status, customer_id, livemode) == no_facts_copy
                    ):
                        continue  # the common case, decided without building anything
                    computed = replace(no_facts_columns, last_plan_change_at=last and last.computed)
                else:
                    user_facts.last_change_at = last and last.computed
                    decision = plan_decide(facts=user_facts, current=plan, now=now)
                    computed = billing_columns(user_facts)
                stored = BillingColumns(status, customer_id, livemode, last and last.stored)
                if decision.plan == plan and stored == computed:
                    continue
                drift += 1
                pending.append(pk)
                self.stdout.write(f"{email}: {_drift_describe(plan, decision, stored, computed)}")
            seen += len(rows)
            if dry_run:
                pending.clear()
            elif len(pending) >= BATCH:
                fixed += _fix(pending)
            self.stderr.write(f"{seen}/{total} users checked, {drift} drifted")
        if pending:
            fixed += _fix(pending)
        duplicates = self._duplicates_report(dry_run=dry_run)
        action = "would fix" if dry_run else "fixed"
        self.stdout.write(
            f"{seen} users checked, {drift} drifted, {action} {fixed if not dry_run else drift}"
            + (f"; {duplicates} with more than one live subscription." if duplicates else ".")
        )

    def _duplicates_report(self, *, dry_run: bool) -> int:
        """Customers with two live subscriptions, both billing: reported, and (unless
        --dry-run) a billing alert for staff. Undoing one is a refund, which the webhook
        does when it sees the second (billing.duplicates), never this pass."""
        found = duplicates_find()
        emails = dict(User.objects.filter(pk__in=list(found)).values_list("pk", "email"))
        for user_id, sub_ids in sorted(found.items()):
            self.stdout.write(
                f"{emails.get(user_id, user_id)}: {len(sub_ids)} live subscriptions, "
                f"all billing ({', '.join(sub_ids)}); keep {sub_ids[0]}, cancel and refund "
                "the others"
            )
            if dry_run:
                continue
            user = User.objects.get(pk=user_id)
            for newer in sub_ids[1:]:
                duplicate_alert_record(
                    user=user,
                    kept=sub_ids[0],
                    newer=newer,
                    detail="Found by reconcile_plans; not cancelled yet.",
                )
        return len(found)


def _fix(pending: list[int]) -> int:
    """Fix the drifted users through the only writer, at once: locked, then decided again
    from facts read under the lock (`plans_refresh`). Empties `pending`; returns how many
    were fixed (all of them: a user whose facts changed meanwhile is simply up to date)."""
    plans_refresh(user_ids=pending, source=PlanChange.Source.RECONCILE, notify=False)
    count = len(pending)
    pending.clear()
    return count


def _drift_describe(
    plan: str, decision: Decision, stored: BillingColumns, computed: BillingColumns
) -> str:
    parts = []
    if decision.plan != plan:
        parts.append(f"stored {plan}, computed {decision.plan} ({decision.why})")
    for name in BILLING_FIELDS:
        before, after = getattr(stored, name), getattr(computed, name)
        if before != after:
            parts.append(f"{name} stored {before!r}, computed {after!r}")
    return "; ".join(parts)
