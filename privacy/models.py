from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models
from django.utils import timezone
from django_stubs_ext import StrOrPromise


class Erasure(models.Model):
    """One account's erasure ("delete my account", or staff on the customer's behalf):
    who asked, when, what was done, at Stripe and here. Written only by
    privacy.erasure.account_erase; kept for good as the proof that it was done
    (docs/personal-data.md). One row per account: asking again resumes or repeats it.
    """

    class State(models.TextChoices):
        STARTED = "started", "Started"
        STRIPE_FAILED = "stripe_failed", "Stopped: Stripe did not answer (nothing erased here)"
        DONE = "done", "Done"

    # SET_NULL: the record outlives the (anonymised) user row, should staff ever delete it.
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.SET_NULL,
        related_name="erasure",
    )
    user_number = models.PositiveIntegerField("user id", db_index=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The member of staff who ran it; empty when the customer asked.",
    )
    requested_at = models.DateTimeField(default=timezone.now)
    state = models.CharField(max_length=20, choices=State.choices, default=State.STARTED)
    finished_at = models.DateTimeField(null=True, blank=True)
    stripe_customer_ids = models.JSONField(default=list, blank=True)
    steps = models.JSONField(
        default=list, blank=True, help_text="What was done, in order (one line each)."
    )
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-requested_at"]
        permissions: ClassVar[list[tuple[str, StrOrPromise]]] = [
            ("erase_personal_data", "Can erase a customer's personal data")
        ]

    def __str__(self) -> str:
        return f"Erasure of user {self.user_number} ({self.get_state_display()})"

    @property
    def requested_by_label(self) -> str:
        return f"staff: {self.requested_by}" if self.requested_by_id else "the customer"
