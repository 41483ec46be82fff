from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django_stubs_ext import StrOrPromise

from billing.plans import Plan


class PlanChange(models.Model):
    """One row for every change of `User.plan`: the plan's full history.

    Written only by `billing.entitlements.plan_refresh`, never when nothing changed.
    """

    class Source(models.TextChoices):
        CHECKOUT = "checkout", "Checkout"
        SUBSCRIPTION = "subscription", "Subscription"
        INVOICE = "invoice", "Invoice"
        REFUND = "refund", "Refund"
        STAFF = "staff", "Staff"
        RECONCILE = "reconcile", "Reconcile"
        DISPUTE = "dispute", "Dispute"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="plan_changes"
    )
    old_plan = models.CharField(max_length=20, choices=Plan.choices)
    new_plan = models.CharField(max_length=20, choices=Plan.choices)
    source = models.CharField(max_length=20, choices=Source.choices)
    stripe_event_id = models.CharField(max_length=255, blank=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The member of staff who made the change, if any.",
    )
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-created_at", "-id"]
        indexes: ClassVar[list[models.Index]] = [models.Index(fields=["user", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.user}: {self.old_plan} -> {self.new_plan} ({self.source})"


class PlanOverride(models.Model):
    """A staff comp: the user has at least `plan` until `expires_at` (or for good).

    Kept as a row (who, when, why, until) so a grant is explained and reversible.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="plan_overrides"
    )
    plan = models.CharField(max_length=20, choices=Plan.choices)
    reason = models.TextField()
    expires_at = models.DateTimeField(null=True, blank=True)
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering: ClassVar[list[str]] = ["-created_at"]
        # Staff grant and revoke through billing.overrides, never by editing rows.
        permissions: ClassVar[list[tuple[str, StrOrPromise]]] = [
            ("grant_override", "Can grant a plan override (comp)"),
            ("revoke_override", "Can revoke a plan override (comp)"),
        ]

    def __str__(self) -> str:
        return f"{self.plan} for {self.user}"

    @staticmethod
    def active_q(now: datetime | None = None) -> Q:
        now = now or timezone.now()
        return Q(revoked_at__isnull=True) & (Q(expires_at__isnull=True) | Q(expires_at__gt=now))


class OneOffPurchase(models.Model):
    """A paid one-off Checkout: that plan for good, unless refunded.

    Unique per Checkout Session so that the webhook and the success page, fulfilling the
    same payment, record it once.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="oneoff_purchases"
    )
    plan = models.CharField(max_length=20, choices=Plan.choices)
    checkout_session_id = models.CharField(max_length=255, unique=True)
    payment_intent_id = models.CharField(max_length=255, blank=True, db_index=True)
    # The paid invoice Checkout made for it (`invoice_creation`): the customer's receipt.
    invoice_id = models.CharField(max_length=255, blank=True)
    price_id = models.CharField(max_length=255, blank=True)
    amount = models.PositiveIntegerField(help_text="In the currency's minor unit.")
    currency = models.CharField(max_length=3)
    paid_at = models.DateTimeField(default=timezone.now)
    refunded_at = models.DateTimeField(null=True, blank=True)
    # The payment's dispute (chargeback), as Stripe last said: while it is open or once
    # it is lost the purchase grants nothing; won (or an inquiry closed) restores it.
    dispute_id = models.CharField(max_length=255, blank=True, db_index=True)
    dispute_status = models.CharField(max_length=40, blank=True)
    disputed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-paid_at"]

    # Dispute statuses under which the purchase still counts (Stripe's: won, an inquiry
    # closed without a chargeback, a chargeback prevented); any other is open or lost.
    DISPUTE_SETTLED_FOR_US = frozenset({"", "won", "warning_closed", "prevented"})

    def __str__(self) -> str:
        return f"{self.plan} one-off for {self.user}"

    @property
    def counts(self) -> bool:
        """Whether this purchase grants its plan: paid, not refunded, not disputed away."""
        return self.refunded_at is None and self.dispute_status in self.DISPUTE_SETTLED_FOR_US


class CheckoutOpened(models.Model):
    """A Checkout Session the app opened, until Stripe says how it ended.

    Kept here, not read from Stripe's list of the customer's open sessions: a session
    paid a second ago is no longer open, yet its subscription may not be synced (its
    webhook not processed), and a second checkout decided from the synced rows alone
    would sell the customer a second subscription (and a second trial). Written under the
    user's lock in the transaction that opened the session, so the next checkout, waiting
    for that lock, always sees it (billing.checkout.checkout_session_create).
    """

    class Status(models.TextChoices):
        OPEN = "open", "Open (or not known yet)"
        COMPLETE = "complete", "Complete"
        EXPIRED = "expired", "Expired"

    class Payment(models.TextChoices):
        NONE = "", "Not a delayed payment"
        PROCESSING = "processing", "Processing (bank debit)"
        PAID = "paid", "Paid"
        FAILED = "failed", "Failed"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="checkouts_opened"
    )
    session_id = models.CharField(max_length=255, unique=True)
    mode = models.CharField(max_length=20)
    plan = models.CharField(max_length=20, choices=Plan.choices)
    interval = models.CharField(max_length=20)
    trial_days = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(default=timezone.now)
    # A delayed payment method (Bacs Direct Debit): the session completes unpaid and the
    # bank answers days later (checkout.session.async_payment_succeeded or _failed).
    # Kept so that the customer sees the payment while it is processing, and cannot buy
    # the same thing again meanwhile (billing.offers, billing/standing.py).
    payment = models.CharField(
        max_length=20, choices=Payment.choices, blank=True, default=Payment.NONE
    )
    amount = models.IntegerField(null=True, blank=True, help_text="Stripe's amount_total.")
    currency = models.CharField(max_length=3, blank=True)
    processing_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-created_at", "-id"]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["user", "status"], name="billing_checkout_user_status")
        ]

    def __str__(self) -> str:
        return f"{self.session_id} ({self.mode}, {self.status}) for {self.user}"


class BillingAlert(models.Model):
    """Something in Stripe's data that billing could not act on, recorded for staff
    (e.g. a Price that maps to no plan). Recorded once per kind and object."""

    class Kind(models.TextChoices):
        UNKNOWN_PRICE = "unknown_price", "Price maps to no plan"
        NO_USER = "no_user", "No user found for a Stripe object"
        DISPUTE = "dispute", "Payment disputed (chargeback)"
        LIVEMODE_MISMATCH = "livemode_mismatch", "Webhook event in the wrong mode"
        WEBHOOK_FAILED = "webhook_failed", "Webhook event not processed"
        DUPLICATE_SUBSCRIPTION = (
            "duplicate_subscription",
            "Second live subscription for one customer",
        )
        PAID_AFTER_END = "paid_after_end", "Invoice paid after its subscription ended"

    kind = models.CharField(max_length=30, choices=Kind.choices)
    stripe_id = models.CharField(max_length=255)
    detail = models.TextField(blank=True)
    stripe_event_id = models.CharField(max_length=255, blank=True)
    seen_count = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    resolved = models.BooleanField(default=False)

    class Meta:
        ordering: ClassVar[list[str]] = ["-last_seen_at"]
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(fields=["kind", "stripe_id"], name="billing_alert_once"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.stripe_id}"


class WebhookDelivery(models.Model):
    """One Stripe event as received on a webhook endpoint, and where its processing
    stands (billing/webhook_queue.py). One row per event id: a duplicate delivery only
    counts here. The body is dj-stripe's WebhookEventTrigger row of the first delivery.
    """

    class State(models.TextChoices):
        PENDING = "pending", "Waiting to be processed"
        PROCESSED = "processed", "Processed"
        FAILED = "failed", "Failed (not retried)"
        GAVE_UP = "gave_up", "Gave up after retrying for three days"

    # Unique by the constraint in Meta, not unique=True: on PostgreSQL that would also
    # make a varchar_pattern_ops index for LIKE, which no query uses (the admin's search
    # is icontains) and every acknowledgement would pay for.
    event_id = models.CharField(max_length=255)
    event_type = models.CharField(max_length=255)
    livemode = models.BooleanField(default=False)
    # The Stripe customer (else object) whose events are processed one at a time.
    customer_key = models.CharField(max_length=255, blank=True)
    trigger = models.ForeignKey(
        "djstripe.WebhookEventTrigger", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    # No index of its own: billing_delivery_backlog (state, received_at) serves every
    # query by state (the worker's backlog, the admin's filter and counts).
    state = models.CharField(max_length=20, choices=State.choices, default=State.PENDING)
    deliveries = models.PositiveIntegerField(default=1, help_text="Times Stripe delivered it.")
    attempts = models.PositiveIntegerField(default=0, help_text="Processing attempts that failed.")
    received_at = models.DateTimeField(default=timezone.now)
    last_delivered_at = models.DateTimeField(default=timezone.now)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # Failures are retried until then (three days after receipt, or after "process again").
    retry_until = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    # Set by "process again" in the admin: run the handlers even if the event is stored.
    reprocess = models.BooleanField(default=False)
    # When retention blanked the stored body (smartflow/retention.py); the row stays.
    body_purged_at = models.DateTimeField(null=True, blank=True)
    # When `billing_webhooks --recover` (billing/webhook_recover.py) found the event in
    # Stripe's Events API with no delivery here and queued it; `deliveries` is then 0
    # until Stripe delivers it after all.
    recovered_at = models.DateTimeField(
        null=True, blank=True, help_text="Recovered from Stripe's Events API: never delivered."
    )

    class Meta:
        ordering: ClassVar[list[str]] = ["-received_at"]
        verbose_name_plural = "webhook deliveries"
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["state", "received_at"], name="billing_delivery_backlog")
        ]
        constraints: ClassVar[list[models.BaseConstraint]] = [
            models.UniqueConstraint(fields=["event_id"], name="billing_delivery_event_id_unique")
        ]
        # Made by migration 0006 first; declared here so that every database has it
        # (backoffice.roles grants it to "Billing admin").
        permissions: ClassVar[list[tuple[str, StrOrPromise]]] = [
            ("process_again", "Can process a webhook delivery again")
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id} ({self.get_state_display()})"


class WebhookRecoverRun(models.Model):
    """One daily recovery of missed Stripe events (billing/webhook_recover.py): when it
    was queued and ran, and what it found.

    One row per window of WEBHOOK_RECOVER_EVERY_HOURS: the unique window is what lets only
    one of several workers queue the recovery of that window."""

    window_start = models.DateTimeField(unique=True)
    queued_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    # {"listed": n, "already": n, "queued": n}
    result = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-window_start"]

    def __str__(self) -> str:
        return f"webhook recovery of {self.window_start:%Y-%m-%d %H:%M}"


class WebhookSecretPrevious(models.Model):
    """An endpoint's signing secret before `billing_webhook --rotate-secret`, still
    accepted until `expires_at` (Stripe keeps signing with the old one for up to 24 h
    after a roll, and deliveries in flight carry it)."""

    endpoint = models.ForeignKey("djstripe.WebhookEndpoint", on_delete=models.CASCADE)
    secret = models.CharField(max_length=255)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"previous secret of {self.endpoint_id} until {self.expires_at:%Y-%m-%d %H:%M}"


class NextCharge(models.Model):
    """Stripe's own preview of a subscription's next invoice (`Invoice.create_preview`):
    what the customer will be charged and when, tax and discounts included.

    Fetched by the worker whenever the subscription syncs (billing/next_charge.py), never in
    a page request, so a page that shows it makes no Stripe call. No row: the
    subscription will not charge again (it cancels, or has ended), or the preview has not
    been fetched yet.
    """

    subscription_id = models.CharField(max_length=255, unique=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="next_charges"
    )
    amount_due = models.IntegerField(help_text="What Stripe will take, in minor units.")
    subtotal = models.IntegerField(help_text="Before discounts and tax.")
    discount = models.IntegerField(default=0, help_text="Taken off by promotion codes.")
    tax = models.IntegerField(default=0)
    tax_inclusive = models.BooleanField(default=False)
    currency = models.CharField(max_length=3)
    due_at = models.DateTimeField(help_text="When Stripe will attempt the payment.")
    lines = models.JSONField(default=list, help_text="[{description, amount}], as Stripe has them.")
    fetched_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.subscription_id}: {self.amount_due} {self.currency}, {self.due_at:%Y-%m-%d}"


class StripePace(models.Model):
    """The next free slot of Stripe's rate limit for the whole deployment
    (STRIPE_RATE_LIMIT, billing/stripe_pace.py): one row, moved forward by each request
    any process sends to Stripe, in one statement of its own."""

    name = models.CharField(max_length=32, primary_key=True)
    next_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name}: next slot {self.next_at:%H:%M:%S.%f}"
