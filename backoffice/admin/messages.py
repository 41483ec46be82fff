from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from backoffice.admin.base import ReadOnlyAdmin, ReadOnlyInline
from onboarding.models import OnboardingMessage
from onboarding.notices import message_summary
from onboarding.outbox import onboarding_message_resend

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
    actions = ["send_again"]
    date_hierarchy = "created_at"

    # A record of what was sent, written by the outbox only; unlike the other read-only
    # records, staff with the delete permission may remove one (as before the move).
    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return admin.ModelAdmin.has_delete_permission(self, request, obj)

    def has_resend_onboarding_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("accounts.resend_onboarding")

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
        again = []
        for message in queryset.select_related("user"):
            resent = onboarding_message_resend(message=message)
            again.append(resent)
            # In the original message's History (Django's LogEntry) as well as the outbox.
            self.log_change(
                request,
                message,
                f"Sent again as message #{resent.pk} ({resent.get_status_display().lower()})",
            )
        queued = sum(m.status == OnboardingMessage.Status.QUEUED for m in again)
        skipped = [m for m in again if m.status == OnboardingMessage.Status.SKIPPED]
        self.message_user(request, f"{queued} message(s) queued to send again.")
        for message in skipped:
            self.message_user(
                request, f"Not sent to {message.user}: {message.last_error}.", messages.WARNING
            )


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
