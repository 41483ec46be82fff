"""Billing in the admin: history and facts are read-only; dj-stripe's admin is read-only for
everyone but superusers, and its secrets (API keys, webhook endpoint secrets) are for
superusers alone.

Plans are changed from the user page (backoffice/admin/users.py) through billing.overrides.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.defaultfilters import truncatechars
from django.urls import URLPattern, path, reverse
from django.utils.decorators import method_decorator
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST
from djstripe.admin import admin as djstripe_admin  # noqa: F401  (registers dj-stripe's first)
from djstripe.models import (
    Account,
    APIKey,
    Customer,
    Invoice,
    PromotionCode,
    Session,
    WebhookEndpoint,
)

from backoffice.admin.base import ReadOnlyAdmin
from billing.models import (
    BillingAlert,
    OneOffPurchase,
    PlanChange,
    PlanOverride,
    WebhookDelivery,
)
from billing.money import money
from billing.webhook_queue import process_again


@admin.register(PlanChange)
class PlanChangeAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "user", "old_plan", "new_plan", "source", "actor", "reason")
    list_filter = ("source", "new_plan")
    search_fields = ("user__email", "stripe_event_id", "reason")
    list_select_related = ("user", "actor")
    date_hierarchy = "created_at"


@admin.register(PlanOverride)
class PlanOverrideAdmin(ReadOnlyAdmin):
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
class OneOffPurchaseAdmin(ReadOnlyAdmin):
    list_display = ("user", "plan", "amount_display", "paid_at", "refunded_at")
    list_filter = ("plan",)
    search_fields = ("user__email", "checkout_session_id", "payment_intent_id")
    list_select_related = ("user",)
    # The stored amount is in pence (minor units): staff read it in its currency.
    exclude = ("amount",)
    readonly_fields = ("amount_display",)

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, obj: OneOffPurchase) -> str:
        return money(obj.amount, obj.currency)


@admin.register(BillingAlert)
class BillingAlertAdmin(admin.ModelAdmin[BillingAlert]):
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
    actions = ("resolve",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Mark selected alerts resolved", permissions=["change"])
    def resolve(self, request: HttpRequest, queryset: QuerySet[BillingAlert]) -> None:
        self.message_user(request, f"{queryset.update(resolved=True)} alerts resolved.")


# --- Webhook deliveries -----------------------------------------------------------------


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    """Stripe's deliveries and where their processing stands (billing/webhook_queue.py).

    Nobody adds or edits a row: the endpoint and the workers write them. Staff with
    `billing.process_again` queue one or many again (after fixing what made them fail, or
    to re-read Stripe for a processed one), from the list or the detail page; each
    request is written to the row's History.
    """

    list_display = (
        "event_type",
        "event_id",
        "customer_key_display",
        "state",
        "deliveries",
        "attempts",
        "received_at",
        "next_attempt_at",
        "processed_at",
        "short_error",
    )
    # "recovered at": not empty for events no webhook brought (billing/webhook_recover.py).
    list_filter = ("state", "event_type", ("recovered_at", admin.EmptyFieldListFilter))
    search_fields = ("event_id", "customer_key")
    ordering = ("-received_at", "-pk")
    fields = readonly_fields = (
        "event_id",
        "event_type",
        "livemode",
        "customer_key",
        "state",
        "deliveries",
        "attempts",
        "received_at",
        "recovered_at",
        "last_delivered_at",
        "next_attempt_at",
        "retry_until",
        "processed_at",
        "last_error",
        "alerts",
        "body",
    )
    actions = ("process_again_action",)

    def has_process_again_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A custom permission (billing/migrations/0006): "view" alone only reads.
        return request.user.has_perm("billing.process_again")

    @admin.display(description="Stripe customer", ordering="customer_key")
    def customer_key_display(self, obj: WebhookDelivery) -> str:
        return obj.customer_key

    @admin.display(description="last error")
    def short_error(self, obj: WebhookDelivery) -> str:
        return truncatechars(obj.last_error, 60)

    @admin.display(description="body (as Stripe sent it)")
    def body(self, obj: WebhookDelivery) -> str:  # safe HTML
        raw = obj.trigger.body if obj.trigger else ""
        if obj.body_purged_at is not None:
            return (
                f"— removed on {obj.body_purged_at:%Y-%m-%d} by retention "
                "(RETENTION_WEBHOOK_BODY_DAYS after receipt, once processed)"
            )
        if not raw:
            return "— (the stored body is gone)"
        with suppress(ValueError):  # not JSON: shown as stored
            raw = json.dumps(json.loads(raw), indent=2, ensure_ascii=False)
        return format_html('<pre class="webhook-body">{}</pre>', raw)

    @admin.display(description="billing alerts")
    def alerts(self, obj: WebhookDelivery) -> str:  # safe HTML
        found = list(BillingAlert.objects.filter(stripe_event_id=obj.event_id).order_by("pk"))
        if not found:
            return "—"
        return format_html_join(
            ", ",
            '<a href="{}">{}</a>',
            ((reverse("admin:billing_billingalert_change", args=[a.pk]), str(a)) for a in found),
        )

    @admin.action(description="Process again", permissions=["process_again"])
    def process_again_action(
        self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]
    ) -> None:
        deliveries = list(queryset)
        queued = process_again(deliveries)
        for delivery in deliveries:
            self.log_change(request, delivery, _process_again_message(delivery))
        self.message_user(request, f"{queued} webhook deliveries queued to be processed again.")

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<path:object_id>/process-again/",
                self.admin_site.admin_view(self.process_again_view),
                name="billing_webhookdelivery_process_again",
            ),
            *super().get_urls(),
        ]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra_context = {
            **(extra_context or {}),
            "can_process_again": self.has_process_again_permission(request),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    @method_decorator(require_POST)
    def process_again_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        # admin_view (get_urls) has checked staff and CSRF; the permission is checked here.
        if not self.has_process_again_permission(request):
            raise PermissionDenied
        delivery = self.get_object(request, unquote(object_id))
        if delivery is None:
            raise Http404("No such webhook delivery.")
        process_again([delivery])
        self.log_change(request, delivery, _process_again_message(delivery))
        self.message_user(request, f"{delivery.event_id} queued to be processed again.")
        return HttpResponseRedirect(
            reverse("admin:billing_webhookdelivery_change", args=[delivery.pk])
        )


def _process_again_message(delivery: WebhookDelivery) -> str:
    return f"Process again (was: {delivery.get_state_display()})"


# --- dj-stripe --------------------------------------------------------------------------


def _superuser_only(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_superuser:
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapped


class _DjStripeReadOnly(admin.ModelAdmin[Any]):
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


# dj-stripe's own search fields of these four name columns its models no longer have
# (the values live in `stripe_data` now), so any search of these lists was a 500: the
# same searches on the JSON (a key lookup with icontains, as the invoice list's).
_SEARCH_FIELDS: dict[type[Any], tuple[str, ...]] = {
    Account: (
        "id",
        "stripe_data__email",
        "stripe_data__business_profile__name",
        "stripe_data__settings__dashboard__display_name",
    ),
    Customer: (
        "id",
        "email",
        "subscriber__email",
        "stripe_data__name",
        "stripe_data__description",
    ),
    PromotionCode: ("id", "stripe_data__code"),
    Session: (
        "id",
        "customer__id",
        "stripe_data__customer_email",
        "stripe_data__customer_details__email",
    ),
}


def _djstripe_admins_restrict() -> None:
    for model in apps.get_app_config("djstripe").get_models():
        if not admin.site.is_registered(model):
            continue
        original = type(admin.site.get_model_admin(model))
        mixin = _SuperuserOnly if model in (APIKey, WebhookEndpoint) else _DjStripeReadOnly
        fixes = {"search_fields": _SEARCH_FIELDS[model]} if model in _SEARCH_FIELDS else {}
        admin.site.unregister(model)
        admin.site.register(model, type(original.__name__, (mixin, original), fixes))


_djstripe_admins_restrict()


# --- Invoices ---------------------------------------------------------------------------


class _InvoiceStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(s, s.replace("_", " ").capitalize()) for s in INVOICE_STATUSES]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> QuerySet[Invoice]:
        value = self.value()
        return queryset.filter(stripe_data__status=value) if value in INVOICE_STATUSES else queryset


INVOICE_STATUSES = ("draft", "open", "paid", "uncollectible", "void")


def _ts(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), tz=UTC) if value else None


class InvoiceAdmin(ReadOnlyAdmin):
    """Invoices as dj-stripe synced them, read-only for everyone, with no Stripe call.

    Replaces dj-stripe's own, which reads fields this API version no longer has (`paid`
    went in 2025-03-31.basil: `status == "paid"` says it) and crashes on list and detail.
    Everything shown comes from `stripe_data`.
    """

    list_display = (
        "number",
        "customer_email",
        "status",
        "amounts",
        "created_on",
        "period",
    )
    list_filter = (_InvoiceStatusFilter, "livemode")
    search_fields = (
        "id",
        "stripe_data__number",
        "customer__id",
        "customer__subscriber__email",
        "stripe_data__customer_email",
    )
    list_select_related = ("customer__subscriber",)
    date_hierarchy = "created"
    ordering = ("-created",)
    fields = readonly_fields = (
        "id",
        "number",
        "customer_email",
        "status",
        "amount_due",
        "amount_paid",
        "amount_remaining",
        "attempt_count",
        "next_payment_attempt",
        "billing_reason",
        "period",
        "created",
        "links",
        "livemode",
    )

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        return {}  # dj-stripe's actions sync from Stripe

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        # dj-stripe's Invoice.__str__ shows pence as pounds: the page names it itself.
        invoice = self.get_object(request, object_id)
        title = self.invoice_title(invoice) if invoice else ""
        extra_context = {**(extra_context or {}), "subtitle": title, "invoice_title": title}
        return super().change_view(request, object_id, form_url, extra_context)

    def invoice_title(self, obj: Invoice) -> str:
        return (
            f"Invoice {self.number(obj)} for {self.amount_due(obj)} "
            f"({self.status(obj) or 'unknown status'})"
        )

    def _money(self, obj: Invoice, key: str) -> str:
        data = obj.stripe_data
        return money(data.get(key), data.get("currency") or settings.BILLING_CURRENCY)

    @admin.display(description="number")
    def number(self, obj: Invoice) -> str:
        return obj.stripe_data.get("number") or "(draft)"

    @admin.display(description="customer", ordering="customer__subscriber__email")
    def customer_email(self, obj: Invoice) -> str:
        subscriber = obj.customer.subscriber if obj.customer else None
        return (
            getattr(subscriber, "email", "")
            or obj.stripe_data.get("customer_email")
            or obj.stripe_data.get("customer")
            or ""
        )

    @admin.display(description="status")
    def status(self, obj: Invoice) -> str:
        return str(obj.stripe_data.get("status") or "")

    @admin.display(description="due / paid")
    def amounts(self, obj: Invoice) -> str:
        # One column for both: the list fits at 1280 px with the sidebar open.
        return f"{self._money(obj, 'amount_due')} / {self._money(obj, 'amount_paid')}"

    @admin.display(description="amount due")
    def amount_due(self, obj: Invoice) -> str:
        return self._money(obj, "amount_due")

    @admin.display(description="amount paid")
    def amount_paid(self, obj: Invoice) -> str:
        return self._money(obj, "amount_paid")

    @admin.display(description="amount remaining")
    def amount_remaining(self, obj: Invoice) -> str:
        return self._money(obj, "amount_remaining")

    @admin.display(description="attempts")
    def attempt_count(self, obj: Invoice) -> int:
        return int(obj.stripe_data.get("attempt_count") or 0)

    @admin.display(description="next retry")
    def next_payment_attempt(self, obj: Invoice) -> datetime | None:
        return _ts(obj.stripe_data.get("next_payment_attempt"))

    @admin.display(description="billing reason")
    def billing_reason(self, obj: Invoice) -> str:
        return str(obj.stripe_data.get("billing_reason") or "")

    @admin.display(description="created", ordering="created")
    def created_on(self, obj: Invoice) -> str:
        # A date: the list fits at 1280 px with the sidebar open (the detail has the time).
        return f"{obj.created:%Y-%m-%d}" if obj.created else ""

    @admin.display(description="period")
    def period(self, obj: Invoice) -> str:  # safe HTML
        start = _ts(obj.stripe_data.get("period_start"))
        end = _ts(obj.stripe_data.get("period_end"))
        if not start or not end:
            return ""
        # On two lines: the list fits at 1280 px with the sidebar open.
        return format_html("{}<br>to {}", f"{start:%Y-%m-%d}", f"{end:%Y-%m-%d}")

    @admin.display(description="Stripe pages")
    def links(self, obj: Invoice) -> str:
        hosted = obj.stripe_data.get("hosted_invoice_url")
        pdf = obj.stripe_data.get("invoice_pdf")
        parts = [
            format_html('<a href="{}" rel="noopener" target="_blank">{}</a>', url, label)
            for url, label in ((hosted, "Hosted invoice"), (pdf, "PDF"))
            if url
        ]
        return format_html_join(" · ", "{}", ((p,) for p in parts)) if parts else "—"


admin.site.unregister(Invoice)
admin.site.register(Invoice, InvoiceAdmin)
