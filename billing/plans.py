"""Plans and the feature matrix, as data.

Adding a plan or a feature is a one-line change here; nothing else in the code base
names a plan in an `if`.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import models


class Plan(models.TextChoices):
    # Declaration order is tier order: a later plan includes everything before it.
    STARTER = "starter", "Starter"
    FLOWKIT = "flowkit", "FlowKit"
    LAUNCHPACK = "launchpack", "LaunchPack"


@dataclass(frozen=True)
class PlanInfo:
    plan: Plan
    description: str


PLAN_INFO: dict[str, PlanInfo] = {
    Plan.STARTER: PlanInfo(Plan.STARTER, "Online booking with calendar sync and your brand."),
    Plan.FLOWKIT: PlanInfo(
        Plan.FLOWKIT, "Everything in Starter, plus SMS reminders and client import."
    ),
    Plan.LAUNCHPACK: PlanInfo(Plan.LAUNCHPACK, "Everything in FlowKit, plus the AI concierge."),
}

# feature -> the lowest plan that has it
FEATURES: dict[str, Plan] = {
    "calendar_sync": Plan.STARTER,
    "brand_kit": Plan.STARTER,
    "sms_reminders": Plan.FLOWKIT,
    "client_import": Plan.FLOWKIT,
    "ai_concierge": Plan.LAUNCHPACK,
}

_RANK: dict[str, int] = {plan.value: rank for rank, plan in enumerate(Plan)}


def plan_rank(plan: str) -> int:
    """Position of `plan` in the tier order (starter is 0)."""
    return _RANK[plan]


def plan_includes(plan: str, required: str) -> bool:
    """Whether `plan` is at or above `required`."""
    return _RANK[plan] >= _RANK[required]


def highest_plan(plans: list[str]) -> Plan:
    """The highest of `plans`, or starter when there are none."""
    return Plan(max(plans, key=_RANK.__getitem__, default=Plan.STARTER))
