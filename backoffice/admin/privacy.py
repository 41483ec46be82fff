"""The erasure log: who asked for an account's erasure, when, and what was done
(written by privacy.erasure, read-only here)."""

from __future__ import annotations

from django.contrib import admin

from backoffice.admin.base import ReadOnlyAdmin
from privacy.models import Erasure


@admin.register(Erasure)
class ErasureAdmin(ReadOnlyAdmin):
    list_display = ("user_number", "state", "requested_by_label", "requested_at", "finished_at")
    list_filter = ("state",)
    search_fields = ("user_number", "stripe_customer_ids")
    fields = readonly_fields = (
        "user",
        "user_number",
        "requested_by",
        "requested_at",
        "state",
        "finished_at",
        "stripe_customer_ids",
        "steps_lines",
        "attempts",
        "last_error",
    )

    @admin.display(description="requested by")
    def requested_by_label(self, obj: Erasure) -> str:
        return obj.requested_by_label

    @admin.display(description="what was done")
    def steps_lines(self, obj: Erasure) -> str:
        return "\n".join(obj.steps)
