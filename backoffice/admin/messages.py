from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts.http import signed_in_user
from accounts.models import User
from backoffice.admin.base import ReadOnlyAdmin, ReadOnlyInline
from onboarding.models import OnboardingMessage
from onboarding.notices import message_summary
from onboarding.outbox import ResendForbidden, onboarding_resend, resend_allowed

_FIELDS = (
    "user",
    "channel",
    "template",
    "context_summary",
    "plan",
    "plan_change",
    "trigger",
    "stripe_event_id",
    "status",
    "recipient",
    "provider_message_id",
    "segments",
    "attempts",
    "last_error",
    "created_at",
    "last_attempt_at",
    "next_attempt_at",
    "sent_at",
    "status_changed_at",
)


@admin.register(OnboardingMessage)
class OnboardingMessageAdmin(ReadOnlyAdmin):
    list_display = (
        "user",
        "template",
        "context_summary",
        "channel",
        "plan",
        "status",
        "attempts",
        "short_error",
        "created_at",
    )
    list_filter = ("status", "template", "channel", "plan")
    search_fields = (
        "user__email",
        "provider_message_id",
        "recipient",
        "trigger",
        "stripe_event_id",
    )
    list_select_related = ("user",)
    readonly_fields = _FIELDS
    fields = _FIELDS
    actions = ("send_again",)
    date_hierarchy = "created_at"

    # A record of what was sent, written by the outbox only; unlike the other read-only
    # records, staff with the delete permission may remove one (as before the move).
    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return admin.ModelAdmin.has_delete_permission(self, request, obj)

    def has_resend_onboarding_permission(self, request: HttpRequest) -> bool:
        return resend_permission(request)

    @admin.display(description="about")
    def context_summary(self, obj: OnboardingMessage) -> str:
        return message_summary(obj)

    @admin.display(description="last error")
    def short_error(self, obj: OnboardingMessage) -> str:
        return obj.last_error[:80] + ("…" if len(obj.last_error) > 80 else "")

    @admin.action(
        description="Send again (opted-out customers get no SMS)", permissions=["resend_onboarding"]
    )
    def send_again(self, request: HttpRequest, queryset: QuerySet[OnboardingMessage]) -> None:
        resend(self, request, originals=queryset.select_related("user"))


# Both "send again" actions (here and on the Users list) go through onboarding_resend,
# which decides the permission, triggers, consent, History and the words staff read.


def resend_permission(request: HttpRequest) -> bool:
    """The admins' has_resend_onboarding_permission: onboarding.outbox.resend_allowed."""
    return isinstance(request.user, User) and resend_allowed(actor=request.user)


def resend(
    model_admin: admin.ModelAdmin[Any],
    request: HttpRequest,
    *,
    users: Iterable[User] = (),
    originals: Iterable[OnboardingMessage] = (),
) -> None:
    """Run onboarding_resend for the signed-in member of staff and tell them the outcome."""
    try:
        report = onboarding_resend(actor=signed_in_user(request), users=users, originals=originals)
    except ResendForbidden as exc:
        raise PermissionDenied(str(exc)) from exc
    for level, text in report.notices():
        model_admin.message_user(request, text, level)


class OnboardingMessageInline(ReadOnlyInline):
    """The user's onboarding messages, on the user's admin page."""

    model = OnboardingMessage
    fk_name = "user"
    fields = (
        "created_at",
        "template",
        "context_summary",
        "channel",
        "plan",
        "status",
        "attempts",
        "last_error",
    )
    readonly_fields = fields
    show_change_link = True
    ordering = ("-created_at",)

    @admin.display(description="about")
    def context_summary(self, obj: OnboardingMessage) -> str:
        return message_summary(obj)
