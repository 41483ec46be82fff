"""Billing in the admin: history and facts are read-only; dj-stripe's admin is read-only for
everyone but superusers, and its secrets (API keys, webhook endpoint secrets) are for
superusers alone.

Plans are changed from the user page (accounts/admin.py) through billing.overrides.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path
from djstripe.admin import admin as djstripe_admin  # noqa: F401  (registers dj-stripe's first)
from djstripe.models import APIKey, WebhookEndpoint

from billing.models import BillingAlert, OneOffPurchase, PlanChange, PlanOverride


class _ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(PlanChange)
class PlanChangeAdmin(_ReadOnlyAdmin):
    list_display = ("created_at", "user", "old_plan", "new_plan", "source", "actor", "reason")
    list_filter = ("source", "new_plan")
    search_fields = ("user__email", "stripe_event_id", "reason")
    list_select_related = ("user", "actor")
    date_hierarchy = "created_at"


@admin.register(PlanOverride)
class PlanOverrideAdmin(_ReadOnlyAdmin):
    list_display = (
        "user",
        "plan",
        "reason",
        "created_at",
        "granted_by",
        "expires_at",
        "revoked_at",
    )
    list_filter = ("plan",)
    search_fields = ("user__email", "reason")
    list_select_related = ("user", "granted_by")


@admin.register(OneOffPurchase)
class OneOffPurchaseAdmin(_ReadOnlyAdmin):
    list_display = ("user", "plan", "amount", "currency", "paid_at", "refunded_at")
    list_filter = ("plan",)
    search_fields = ("user__email", "checkout_session_id", "payment_intent_id")
    list_select_related = ("user",)


@admin.register(BillingAlert)
class BillingAlertAdmin(admin.ModelAdmin):
    list_display = ("kind", "stripe_id", "seen_count", "last_seen_at", "resolved")
    list_filter = ("resolved", "kind")
    search_fields = ("stripe_id", "stripe_event_id")
    readonly_fields = (
        "kind",
        "stripe_id",
        "detail",
        "stripe_event_id",
        "seen_count",
        "created_at",
        "last_seen_at",
    )
    actions = ["resolve"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Mark selected alerts resolved", permissions=["change"])
    def resolve(self, request: HttpRequest, queryset: QuerySet[BillingAlert]) -> None:
        self.message_user(request, f"{queryset.update(resolved=True)} alerts resolved.")


# --- dj-stripe --------------------------------------------------------------------------


def _superuser_only(view: Any) -> Any:
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_superuser:
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapped


class _DjStripeReadOnly:
    """Mixed in before dj-stripe's own ModelAdmins: only superusers write to Stripe
    or sync from it (its actions and confirm view check nothing but is_staff)."""

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return request.user.is_superuser and super().has_add_permission(request, *args)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser and super().has_delete_permission(request, obj)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        return super().get_actions(request) if request.user.is_superuser else {}

    def get_urls(self) -> list[URLPattern]:
        urls = super().get_urls()
        return [
            path(str(url.pattern), _superuser_only(url.callback), name=url.name)
            if url.name == "djstripe_custom_action"
            else url
            for url in urls
        ]


class _SuperuserOnly(_DjStripeReadOnly):
    """Secrets: invisible to anyone but superusers, whatever their permissions say."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser


def _djstripe_admins_restrict() -> None:
    for model in apps.get_app_config("djstripe").get_models():
        if not admin.site.is_registered(model):
            continue
        original = type(admin.site.get_model_admin(model))
        mixin = _SuperuserOnly if model in (APIKey, WebhookEndpoint) else _DjStripeReadOnly
        admin.site.unregister(model)
        admin.site.register(model, type(original.__name__, (mixin, original), {}))


_djstripe_admins_restrict()
