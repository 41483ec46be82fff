from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from accounts.models import User
from billing.entitlements import (
    BILLING_FIELDS,
    BillingColumns,
    billing_columns,
    facts_load,
    plan_decide,
    plan_refresh,
)
from billing.models import PlanChange

BATCH = 2000


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
        total = User.objects.count()
        seen = drift = fixed = 0
        last_pk = 0
        while True:
            # Keyset pagination: a fixed number of queries per batch of users.
            users = list(
                User.objects.filter(pk__gt=last_pk)
                .order_by("pk")
                .only("pk", "email", "plan", *BILLING_FIELDS)[:BATCH]
            )
            if not users:
                break
            last_pk = users[-1].pk
            # Only the keys of the Stripe JSON that the decision reads; decided here, in
            # Python; only a drifted user costs statements of their own (plan_refresh).
            facts = facts_load(u.pk for u in users)
            for user in users:
                decision = plan_decide(facts=facts[user.pk], current=user.plan)
                stored, computed = BillingColumns.of_user(user), billing_columns(facts[user.pk])
                if decision.plan == user.plan and stored == computed:
                    continue
                drift += 1
                self.stdout.write(
                    f"{user.email}: {_drift_describe(user, decision, stored, computed)}"
                )
                if not dry_run:
                    plan_refresh(user=user, source=PlanChange.Source.RECONCILE, notify=False)
                    fixed += 1
            seen += len(users)
            self.stderr.write(f"{seen}/{total} users checked, {drift} drifted")
        action = "would fix" if dry_run else "fixed"
        self.stdout.write(f"{seen} users checked, {drift} drifted, {action} {drift}.")


def _drift_describe(
    user: User, decision: Any, stored: BillingColumns, computed: BillingColumns
) -> str:
    parts = []
    if decision.plan != user.plan:
        parts.append(f"stored {user.plan}, computed {decision.plan} ({decision.why})")
    for name in BILLING_FIELDS:
        before, after = getattr(stored, name), getattr(computed, name)
        if before != after:
            parts.append(f"{name} stored {before!r}, computed {after!r}")
    return "; ".join(parts)
