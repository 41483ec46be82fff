from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from accounts.models import User
from billing.entitlements import facts_load, plan_decide, plan_refresh
from billing.models import PlanChange

BATCH = 2000


class Command(BaseCommand):
    help = (
        "Recompute every user's plan from dj-stripe's data, one-off purchases and staff "
        "overrides; print the drift (user, stored plan, computed plan, why) and fix it "
        "with source 'reconcile'. --dry-run only reports. Also sweeps expired overrides."
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
                .only("pk", "email", "plan")[:BATCH]
            )
            if not users:
                break
            last_pk = users[-1].pk
            facts = facts_load(u.pk for u in users)
            for user in users:
                decision = plan_decide(facts=facts[user.pk], current=user.plan)
                if decision.plan == user.plan:
                    continue
                drift += 1
                self.stdout.write(
                    f"{user.email}: stored {user.plan}, computed {decision.plan} ({decision.why})"
                )
                if not dry_run and plan_refresh(
                    user=user, source=PlanChange.Source.RECONCILE, notify=False
                ):
                    fixed += 1
            seen += len(users)
            if total > BATCH:
                self.stderr.write(f"... {seen}/{total} users")
        action = "would fix" if dry_run else "fixed"
        self.stdout.write(
            f"{seen} users checked, {drift} drifted, {action} {drift if dry_run else fixed}."
        )
