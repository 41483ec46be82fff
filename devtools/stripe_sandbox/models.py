"""The sandbox's state: Stripe objects as JSON, its clock, webhook deliveries.

Kept in the database (not in memory) so that the web process, which answers the API
and the checkout page, and the task worker, which delivers webhooks, share it.
"""

from __future__ import annotations

from typing import ClassVar

from django.db import models
from django.utils import timezone


class StripeObject(models.Model):
    """One Stripe object (customer, price, subscription, event...) as Stripe shows it.

    Keys starting with "_" in `data` are the sandbox's own bookkeeping (the test card
    of a subscription, the line items of a checkout session) and are never sent out.
    """

    id = models.CharField(primary_key=True, max_length=255)
    type = models.CharField(max_length=64, db_index=True, help_text='Stripe\'s "object".')
    data = models.JSONField()
    created = models.BigIntegerField(db_index=True, help_text="Stripe's created (sandbox clock).")
    # Breaks ties between objects created in the same second: lists are newest first.
    inserted_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-created", "-inserted_at"]

    def __str__(self) -> str:
        return self.id


class SandboxClock(models.Model):
    """The sandbox's time is real time plus an offset (`stripe_sandbox advance`)."""

    offset_seconds = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"+{self.offset_seconds}s"


class Delivery(models.Model):
    """One event to one webhook endpoint: what was tried, what is left to try."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    event_id = models.CharField(max_length=255, db_index=True)
    endpoint_id = models.CharField(max_length=255, help_text="djstripe WebhookEndpoint.id")
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_status = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["id"]
        verbose_name_plural = "deliveries"
        indexes: ClassVar[list[models.Index]] = [models.Index(fields=["state", "id"])]

    def __str__(self) -> str:
        return f"{self.event_id} -> {self.endpoint_id} ({self.state})"


class IdempotentRequest(models.Model):
    """A POST's answer kept under its Idempotency-Key, replayed when the key comes again."""

    key = models.CharField(max_length=255, unique=True)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=512)
    status = models.PositiveSmallIntegerField()
    body = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.key


class RateLimitBucket(models.Model):
    """STRIPE_SANDBOX_RATE_LIMIT's bucket on PostgreSQL, shared by every process (ratelimit.py).

    Kept as GCRA's one timestamp: `tat` is when the bucket will be full again. A request is
    let through when taking its token leaves `tat` at most one bucket (a second of the
    rate) ahead of the database's clock.
    """

    name = models.CharField(primary_key=True, max_length=32)
    tat = models.DateTimeField(help_text="When the bucket is full again (database clock).")

    def __str__(self) -> str:
        return f"{self.name}: full at {self.tat:%H:%M:%S.%f}"
