from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models
from django.utils import timezone

from billing.plans import Plan


class OnboardingMessage(models.Model):
    """One message to one customer on one channel, answering one trigger: an activation
    (the welcome) or a moment billing tells the customer about (a failed payment, a
    refund...; billing.signals.customer_notice).

    Written in the transaction that caused it, together with the task that sends it, so
    it exists exactly when its cause does. The unique constraint on (user, channel,
    trigger) is what makes "told exactly once per activation, attempt or event" hold.
    The text is rendered at send time from `template` and `context`.
    """

    class Channel(models.TextChoices):
        EMAIL = "email", "Email"
        SMS = "sms", "SMS"

    class Template(models.TextChoices):
        WELCOME = "welcome", "Welcome to the plan"
        PAYMENT_FAILED = "payment_failed", "Payment failed"
        PAYMENT_ACTION_REQUIRED = "payment_action_required", "Payment needs authentication"
        PAYMENT_RECOVERED = "payment_recovered", "Payment received after a failure"
        CANCELLATION_SCHEDULED = "cancellation_scheduled", "Cancellation scheduled"
        PLAN_ENDED = "plan_ended", "Plan ended"
        REFUND = "refund", "Refund"
        TRIAL_ENDING = "trial_ending", "Trial ending"
        DUPLICATE_SUBSCRIPTION = "duplicate_subscription", "Second subscription cancelled"
        BANK_DEBIT_FAILED = "bank_debit_failed", "Bank debit failed"
        SUBSCRIPTION_RESUMED = "subscription_resumed", "Cancellation undone"
        UPGRADE_DECLINED = "upgrade_declined", "Upgrade payment declined"
        PLAN_UPGRADED = "plan_upgraded", "Plan upgraded"
        PLAN_DOWNGRADED = "plan_downgraded", "Plan downgraded"
        COMP_GRANTED = "comp_granted", "Complimentary plan granted"
        COMP_ENDED = "comp_ended", "Complimentary plan ended"
        PAID_AFTER_END_REFUNDED = (
            "paid_after_end_refunded",
            "Payment after the plan ended, refunded",
        )
        PHONE_CODE = "phone_code", "Mobile number confirmation code"
        # django-allauth's: confirm an address, reset a password, "already exists",
        # notices of a change (accounts/adapter.py). Rendered when queued.
        ACCOUNT = "account", "Account email (confirmation, password reset, notices)"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENT = "sent", "Sent"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"
        BOUNCED = "bounced", "Bounced"
        UNDELIVERED = "undelivered", "Undelivered"
        COMPLAINED = "complained", "Marked as spam"

    # None only for an account email to an address with no account (a password reset
    # asked for an unknown address).
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="onboarding_messages",
    )
    channel = models.CharField(max_length=10, choices=Channel.choices)
    template = models.CharField(max_length=30, choices=Template.choices)
    plan = models.CharField(max_length=20, choices=Plan.choices)
    plan_change = models.ForeignKey(
        "billing.PlanChange",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="onboarding_messages",
    )
    trigger = models.CharField(
        max_length=100,
        help_text=(
            'What the message answers, e.g. "plan_change:42", '
            '"payment_failed:in_123:2" or a staff resend.'
        ),
    )
    context = models.JSONField(
        default=dict,
        blank=True,
        help_text="Facts the message is rendered from (amounts in minor units, Unix times).",
    )
    stripe_event_id = models.CharField(
        max_length=255, blank=True, help_text="The Stripe event that caused it, if any."
    )
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    recipient = models.CharField(max_length=255, blank=True, help_text="Address or number used.")
    provider_message_id = models.CharField(max_length=255, blank=True, db_index=True)
    segments = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="SMS segments the text takes (what Twilio bills)."
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    status_changed_at = models.DateTimeField(default=timezone.now)
    # When retention removed the words (`context`) of this sent message; the row, its
    # status and recipient stay as the record that it was sent (smartflow/retention.py).
    body_purged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-created_at", "-id"]
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(
                fields=["user", "channel", "trigger"], name="onboarding_message_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_template_display()} {self.get_channel_display()} to {self.user}"
