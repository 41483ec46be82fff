"""Staff comps ("overrides"): granting and revoking a plan by hand, explained and reversible.

An override is a row (who, when, why, until); the plan itself is still decided by
`billing.entitlements`, which counts active overrides. So a grant or a revoke is: write
the row, then `plan_refresh` with the staff member as actor. An override that expires
stops counting at once in `plan_compute`; `billing.tasks.overrides_sweep`, enqueued for
the expiry time, moves the stored plan back (and `reconcile_plans` catches anything left).
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from billing.entitlements import plan_refresh
from billing.models import PlanChange, PlanOverride
from billing.plans import Plan
from billing.tasks import overrides_sweep

logger = logging.getLogger(__name__)


class OverrideInvalid(ValueError):
    """A grant that cannot be made as asked (no reason, unknown plan, expiry in the past)."""


class OverrideForbidden(PermissionError):
    """`actor` may not grant or revoke an override for that user (see override_allowed)."""


def override_allowed(*, actor: User, user: User) -> bool:
    """Whether `actor` may grant, revoke or extend an override on `user`'s account.

    A member of staff never comps themselves or a colleague (a Support member could
    otherwise give their own account LaunchPack): only a superuser can, and the plan
    history then shows which one.
    """
    if actor.is_superuser:
        return True
    return actor.pk != user.pk and not (user.is_staff or user.is_superuser)


def _require_allowed(*, actor: User, user: User) -> None:
    if not override_allowed(actor=actor, user=user):
        raise OverrideForbidden(
            "Only a superuser can change an override on a staff account or on your own."
        )


def override_grant(
    *,
    user: User,
    plan: str,
    reason: str,
    expires_at: datetime | None,
    notify: bool,
    actor: User,
) -> PlanOverride:
    """Comp `user` at least `plan` until `expires_at` (None: until revoked).

    Writes the PlanOverride and, when the plan changes, a PlanChange (source "staff",
    `actor`, `reason`); `notify` asks onboarding to tell the customer. Raises
    OverrideForbidden when `override_allowed` says no.
    """
    _require_allowed(actor=actor, user=user)
    reason = (reason or "").strip()
    if not reason:
        raise OverrideInvalid("Give a reason: it is shown in the plan history.")
    if plan not in Plan.values:
        raise OverrideInvalid(f"Unknown plan {plan!r}.")
    if expires_at is not None and expires_at <= timezone.now():
        raise OverrideInvalid("The expiry must be in the future.")
    with transaction.atomic():
        override = PlanOverride.objects.create(
            user=user, plan=plan, reason=reason, expires_at=expires_at, granted_by=actor
        )
        plan_refresh(
            user=user, source=PlanChange.Source.STAFF, actor=actor, reason=reason, notify=notify
        )
        if expires_at is not None:
            # A task row in our database: it commits or rolls back with the grant.
            overrides_sweep.using(run_after=expires_at).enqueue()
    logger.info("Override %s: %s granted %s to user %s", override.pk, actor.pk, plan, user.pk)
    return override


def override_revoke(*, override: PlanOverride, actor: User) -> PlanChange | None:
    """End `override` now and recompute the plan; returns the PlanChange, if any.

    Revoking an override that is already revoked changes nothing. Raises
    OverrideForbidden when `override_allowed` says no.
    """
    with transaction.atomic():
        locked = PlanOverride.objects.select_for_update().select_related("user").get(pk=override.pk)
        _require_allowed(actor=actor, user=locked.user)
        if locked.revoked_at is not None:
            return None
        locked.revoked_at = timezone.now()
        locked.revoked_by = actor
        locked.save(update_fields=["revoked_at", "revoked_by"])
        override.revoked_at, override.revoked_by = locked.revoked_at, actor
        change = plan_refresh(
            user=locked.user,
            source=PlanChange.Source.STAFF,
            actor=actor,
            reason=f"override revoked ({locked.get_plan_display()}: {locked.reason})",
            notify=False,
        )
    logger.info("Override %s revoked by %s", locked.pk, actor.pk)
    return change
