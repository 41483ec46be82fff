from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from onboarding.outbox import onboarding_outbox_sweep


class Command(BaseCommand):
    help = (
        "Recover onboarding messages a stopped worker left behind: a message whose send "
        "task was claimed by a worker that died before the attempt started is queued "
        "again; an attempt that started but never recorded the provider's answer is never "
        "sent again, and after 15 minutes is marked failed ('the outcome is unknown') for "
        "staff. Every `manage.py worker` runs it at start and every minute; this runs it by "
        "hand. Safe "
        "to run any number of times, beside running workers."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        report = onboarding_outbox_sweep()
        self.stdout.write(
            f"{report.requeued} message(s) queued again, "
            f"{report.outcome_unknown} marked failed (outcome unknown)."
        )
