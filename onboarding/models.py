from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from billing.plans import Plan


class OnboardingMessage(models.Model):
    """One message to one customer on one channel, answering one trigger (an activation).

    Written in the transaction that caused it, together with the task that sends it, so
    it exists exactly when the activation does. The unique constraint on (user, channel,
    trigger) is what makes "welcomed exactly once per activation" hold.
    """

    class Channel(models.TextChoices):
        EMAIL = "email", "Email"
        SMS = "sms", "SMS"

    class Template(models.TextChoices):
        WELCOME = "welcome", "Welcome to the plan"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENT = "sent", "Sent"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"
        BOUNCED = "bounced", "Bounced"
        UNDELIVERED = "undelivered", "Undelivered"
        COMPLAINED = "complained", "Marked as spam"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="onboarding_messages"
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
        help_text='What the message answers, e.g. "plan_change:42" or a staff resend.',
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

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "channel", "trigger"], name="onboarding_message_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_template_display()} {self.get_channel_display()} to {self.user}"
