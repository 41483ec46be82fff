"""The one read-only base for admin pages of records that code writes, never staff.

Plan history, overrides, purchases, webhook deliveries and the outbox's messages are
written by their domain modules (billing.overrides, billing.webhook_queue,
onboarding.outbox...), so the admin may show them but never add, change or delete them.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest


class ReadOnlyMixin:
    """No add, change or delete through the admin, whatever the user's permissions."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyAdmin(ReadOnlyMixin, admin.ModelAdmin[Any]):
    pass


class ReadOnlyInline(ReadOnlyMixin, admin.TabularInline[Any, Any]):
    extra = 0
    can_delete = False
