"""The Users admin: find a customer, see why they are on their plan, comp, resync, export.

Staff never edit `plan`: they grant or revoke an override through `billing.overrides`,
which recomputes the plan and writes the history. Every ability beyond viewing is a
permission checked on the server (`has_<ability>_permission`), not just a hidden button.
"""

from __future__ import annotations

import csv
import logging
from datetime import timedelta
from typing import Any

import stripe
from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from accounts.http import signed_in_user
from accounts.models import User
from backoffice.admin.base import ReadOnlyInline
from backoffice.admin.messages import OnboardingMessageInline, resend, resend_permission
from billing.entitlements import plan_compute
from billing.models import PlanChange, PlanOverride
from billing.overrides import (
    OverrideForbidden,
    OverrideInvalid,
    override_allowed,
    override_grant,
    override_revoke,
)
from billing.plans import Plan
from billing.resync import billing_resync
from billing.timeline import payment_timeline
from privacy.erasure import ErasureIncomplete, account_erase
from privacy.models import Erasure

logger = logging.getLogger(__name__)

BILLING_STATUSES = [
    ("none", "None"),
    ("active", "Active"),
    ("trialing", "Trialing"),
    ("past_due", "Past due"),
    ("canceled", "Canceled"),
]


def stripe_customer_url(customer_id: str, *, livemode: bool | None) -> str:
    """The customer's page in Stripe's dashboard (test-mode objects live under /test/)."""
    prefix = "" if livemode else "test/"
    return f"https://dashboard.stripe.com/{prefix}customers/{customer_id}"


class BillingStatusFilter(admin.SimpleListFilter):
    title = "billing status"
    parameter_name = "billing_status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return BILLING_STATUSES

    def queryset(self, request: HttpRequest, queryset: QuerySet[User]) -> QuerySet[User]:
        value = self.value()
        if not value:
            return queryset
        # The user's own column (written by plan_refresh): no subquery, an index.
        return queryset.filter(billing_status="" if value == "none" else value)


class _UserChangeForm(UserChangeForm[User]):
    class Meta:
        model = User
        fields = "__all__"


class _UserCreationForm(AdminUserCreationForm[User]):
    class Meta:
        model = User
        fields = ("email",)


class OverrideGrantForm(forms.Form):
    plan = forms.ChoiceField(choices=Plan.choices, initial=Plan.LAUNCHPACK)
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        error_messages={"required": "Give a reason: it is kept in the plan history."},
        help_text="Why this customer gets the plan (kept in the plan history).",
    )
    days = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=3650,
        label="For how many days",
        help_text="Leave empty to keep it until it is revoked.",
    )
    notify = forms.BooleanField(
        required=False,
        label="Notify the customer",
        help_text="Tell them it is complimentary, and until when (email; SMS if opted in).",
    )

    def clean_reason(self) -> str:
        reason: str = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("Give a reason: it is kept in the plan history.")
        return reason


class PlanChangeInline(ReadOnlyInline):
    model = PlanChange
    fk_name = "user"
    verbose_name = "plan change"
    verbose_name_plural = "Plan history (newest first)"
    fields = readonly_fields = (
        "created_at",
        "old_plan",
        "new_plan",
        "source",
        "actor",
        "reason",
        "stripe_event_id",
    )
    ordering = ("-created_at", "-id")

    def get_queryset(self, request: HttpRequest) -> QuerySet[PlanChange]:
        return super().get_queryset(request).select_related("actor")


class PlanOverrideInline(ReadOnlyInline):
    model = PlanOverride
    fk_name = "user"
    verbose_name = "override"
    verbose_name_plural = "Overrides (comps)"
    fields = readonly_fields = (
        "plan",
        "reason",
        "created_at",
        "granted_by",
        "expires_at",
        "revoked_at",
        "revoked_by",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[PlanOverride]:
        return super().get_queryset(request).select_related("granted_by", "revoked_by")


@admin.register(User)
class UserAdmin(DjangoUserAdmin[User]):
    form = _UserChangeForm
    add_form = _UserCreationForm
    list_display = (
        "email",
        "plan",
        "billing_status_display",
        "stripe_customer_link",
        "date_joined",
        "last_plan_change",
    )
    list_filter = ("plan", BillingStatusFilter, "is_staff", "sms_opt_in")
    # The newest Stripe customer id is a column of the user: searching it needs no join.
    search_fields = ("email", "phone", "stripe_customer_id")
    ordering = ("-date_joined",)
    # `plan` is computed by billing.entitlements; staff change it through overrides.
    readonly_fields = (
        "plan",
        "plan_why",
        "billing_status_display",
        "active_overrides",
        "active_overrides_plain",
        "stripe_customer_link",
        "date_joined",
        "last_login",
        "updated_at",
        # Set only by the customer entering the code texted to them (accounts/phone.py).
        "phone_confirmed",
        "phone_confirmed_at",
    )
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        (
            "Plan",
            {
                "fields": (
                    "plan",
                    "plan_why",
                    "billing_status_display",
                    "active_overrides",
                    "stripe_customer_link",
                )
            },
        ),
        ("Contact", {"fields": ("phone", "sms_opt_in", "phone_confirmed", "phone_confirmed_at")}),
        (
            "Permissions",
            {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")},
        ),
        ("Dates", {"fields": ("date_joined", "last_login", "updated_at")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": ("email", "usable_password", "password1", "password2"),
            },
        ),
    )
    inlines = (PlanOverrideInline, PlanChangeInline, OnboardingMessageInline)
    actions = ("resync_from_stripe", "onboarding_resend", "export_csv", "erase_personal_data")

    # --- Queries ---------------------------------------------------------------------

    def get_fieldsets(self, request: HttpRequest, obj: User | None = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:
            return fieldsets
        # No button that answers 403: the password's "Reset password" needs the change
        # permission, and "Revoke…" the revoke permission on a user the actor may comp.
        drop = set()
        if not self.has_change_permission(request, obj):
            drop.add("password")
        can_revoke = self.has_revoke_override_permission(request) and override_allowed(
            actor=signed_in_user(request), user=obj
        )
        swap: dict[Any, Any] = {} if can_revoke else {"active_overrides": "active_overrides_plain"}
        return [
            (name, {**opts, "fields": [swap.get(f, f) for f in opts["fields"] if f not in drop]})
            for name, opts in fieldsets
        ]

    def get_inlines(self, request: HttpRequest, obj: User | None) -> list[Any]:
        # History only exists for a saved user; the add page stays Django's.
        return list(self.inlines) if obj is not None else []

    # --- Columns and read-only fields ------------------------------------------------

    @admin.display(description="billing status", ordering="billing_status")
    def billing_status_display(self, obj: User) -> str:
        return obj.billing_status or "none"

    @admin.display(description="Stripe customer", ordering="stripe_customer_id")
    def stripe_customer_link(self, obj: User) -> str:
        customer_id = obj.stripe_customer_id
        if not customer_id:
            return "-"
        url = stripe_customer_url(customer_id, livemode=obj.stripe_customer_livemode)
        return format_html('<a href="{}" target="_blank" rel="noopener">{}</a>', url, customer_id)

    @admin.display(description="last plan change", ordering="last_plan_change_at")
    def last_plan_change(self, obj: User) -> Any:
        return obj.last_plan_change_at or "-"

    @admin.display(description="why this plan")
    def plan_why(self, obj: User) -> str:
        decision = plan_compute(obj)
        if decision.plan != obj.plan:
            return (
                f"{decision.why} (computed {decision.plan.label}; stored plan differs until "
                "the next refresh: resync or reconcile_plans)"
            )
        return decision.why

    @admin.display(description="active override")
    def active_overrides(self, obj: User) -> str:
        return self._overrides(obj, revoke_links=True)

    @admin.display(description="active override")
    def active_overrides_plain(self, obj: User) -> str:
        # For staff who may not revoke (get_fieldsets): the same text, no link.
        return self._overrides(obj, revoke_links=False)

    def _overrides(self, obj: User, *, revoke_links: bool) -> str:
        active = list(obj.plan_overrides.filter(PlanOverride.active_q()))
        if not active:
            return "none"
        return format_html_join(
            mark_safe("<br>"),
            "{} until {}, by {}: {} {}",
            (
                (
                    o.get_plan_display(),
                    f"{o.expires_at:%Y-%m-%d %H:%M} UTC" if o.expires_at else "revoked",
                    o.granted_by or "?",
                    o.reason,
                    format_html(
                        '<a href="{}">Revoke…</a>',
                        reverse("admin:accounts_user_override_revoke", args=[obj.pk, o.pk]),
                    )
                    if revoke_links
                    else "",
                )
                for o in active
            ),
        )

    # --- Permissions beyond Django's four --------------------------------------------

    def has_grant_override_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("billing.grant_override")

    def has_revoke_override_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("billing.revoke_override")

    def has_resync_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("accounts.resync_billing")

    def has_export_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("accounts.export_users")

    def has_resend_onboarding_permission(self, request: HttpRequest) -> bool:
        return resend_permission(request)

    def has_erase_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("privacy.erase_personal_data")

    # --- Actions ---------------------------------------------------------------------

    @admin.action(description="Resync selected users from Stripe", permissions=["resync"])
    def resync_from_stripe(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        synced = changed = failed = 0
        for user in queryset:
            try:
                change = billing_resync(user=user, actor=signed_in_user(request))
            except stripe.StripeError as exc:
                failed += 1
                logger.warning("Resync of user %s failed: %s", user.pk, exc)
                self.message_user(request, f"{user}: Stripe error: {exc}", messages.ERROR)
                self.log_change(request, user, f"Resync from Stripe failed: {exc}"[:500])
                continue
            synced += 1
            changed += change is not None
            self.log_change(request, user, _resync_message(change))
        self.message_user(request, f"Resynced {synced} users from Stripe; {changed} changed plan.")
        if failed:
            self.message_user(request, f"{failed} could not be resynced.", messages.WARNING)

    @admin.action(
        description="Send the onboarding (welcome) again", permissions=["resend_onboarding"]
    )
    def onboarding_resend(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        resend(self, request, users=queryset)

    @admin.action(description="Export selected users to CSV", permissions=["export"])
    def export_csv(self, request: HttpRequest, queryset: QuerySet[User]) -> HttpResponse:
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        stamp = timezone.now().strftime("%Y%m%d-%H%M")
        response["Content-Disposition"] = f'attachment; filename="users-{stamp}.csv"'
        writer = csv.writer(response)
        writer.writerow(["email", "plan", "billing status", "stripe customer", "joined"])
        for user in queryset:
            writer.writerow(
                [
                    _csv_safe(user.email),
                    user.plan,
                    user.billing_status or "none",
                    user.stripe_customer_id or "",
                    user.date_joined.isoformat(),
                ]
            )
        return response

    @admin.action(description="Erase personal data (one user, confirmed)…", permissions=["erase"])
    def erase_personal_data(
        self, request: HttpRequest, queryset: QuerySet[User]
    ) -> HttpResponse | None:
        # One person at a time, on a page that says what will happen: never in bulk.
        if queryset.count() != 1:
            self.message_user(
                request,
                "Select exactly one user to erase: each erasure is confirmed.",
                messages.ERROR,
            )
            return None
        user = queryset.get()
        return HttpResponseRedirect(reverse("admin:accounts_user_erase", args=[user.pk]))

    # --- Views: grant and revoke -----------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/override/grant/",
                wrap(self.override_grant_view),
                name="accounts_user_override_grant",
            ),
            path(
                "<path:object_id>/override/<int:override_id>/revoke/",
                wrap(self.override_revoke_view),
                name="accounts_user_override_revoke",
            ),
            path(
                "<path:object_id>/erase/",
                wrap(self.erase_view),
                name="accounts_user_erase",
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
        user = self.get_object(request, unquote(object_id))
        extra_context = {
            **(extra_context or {}),
            "can_grant_override": self.has_grant_override_permission(request)
            and (user is None or override_allowed(actor=signed_in_user(request), user=user)),
            "payment_timeline": payment_timeline(user) if user is not None else [],
            "can_erase": user is not None
            and self.has_erase_permission(request)
            and _erase_allowed(actor=signed_in_user(request), user=user),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def _user_or_404(self, request: HttpRequest, object_id: str) -> User:
        user = self.get_object(request, unquote(object_id))
        if user is None:
            raise Http404("No such user.")
        return user

    def _override_target(self, request: HttpRequest, object_id: str) -> User:
        # Checked before the form is shown, and again by billing.overrides on submit.
        user = self._user_or_404(request, object_id)
        if not override_allowed(actor=signed_in_user(request), user=user):
            raise PermissionDenied("Only a superuser can comp a staff account or your own.")
        return user

    def _page(self, request: HttpRequest, template: str, **context: Any) -> TemplateResponse:
        context = {**self.admin_site.each_context(request), "opts": self.opts, **context}
        return TemplateResponse(request, f"admin/accounts/user/{template}", context)

    def override_grant_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if not self.has_grant_override_permission(request):
            raise PermissionDenied
        user = self._override_target(request, object_id)
        form = OverrideGrantForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            days = form.cleaned_data["days"]
            try:
                override = override_grant(
                    user=user,
                    plan=form.cleaned_data["plan"],
                    reason=form.cleaned_data["reason"],
                    expires_at=timezone.now() + timedelta(days=days) if days else None,
                    notify=form.cleaned_data["notify"],
                    actor=signed_in_user(request),
                )
            except OverrideForbidden as exc:
                raise PermissionDenied(str(exc)) from exc
            except OverrideInvalid as exc:
                form.add_error(None, str(exc))
            else:
                user.refresh_from_db(fields=["plan"])
                self.log_change(request, user, _grant_message(override))
                self.message_user(request, f"{user} is now on {user.get_plan_display()}.")
                return HttpResponseRedirect(reverse("admin:accounts_user_change", args=[user.pk]))
        return self._page(
            request,
            "override_grant.html",
            title=f"Grant a plan to {user}",
            original=user,
            form=form,
            why=plan_compute(user).why,
        )

    def override_revoke_view(
        self, request: HttpRequest, object_id: str, override_id: int
    ) -> HttpResponse:
        if not self.has_revoke_override_permission(request):
            raise PermissionDenied
        user = self._override_target(request, object_id)
        override = get_object_or_404(PlanOverride, pk=override_id, user=user)
        if request.method == "POST":
            try:
                override_revoke(override=override, actor=signed_in_user(request))
            except OverrideForbidden as exc:
                raise PermissionDenied(str(exc)) from exc
            user.refresh_from_db(fields=["plan"])
            self.log_change(
                request,
                user,
                f"Revoked the {override.get_plan_display()} override (#{override.pk}); "
                f"now on {user.get_plan_display()}",
            )
            self.message_user(
                request, f"Override revoked; {user} is now on {user.get_plan_display()}."
            )
            return HttpResponseRedirect(reverse("admin:accounts_user_change", args=[user.pk]))
        return self._page(
            request,
            "override_revoke.html",
            title=f"Revoke {override.get_plan_display()} for {user}?",
            original=user,
            override=override,
        )

    def erase_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if not self.has_erase_permission(request):
            raise PermissionDenied
        user = self._user_or_404(request, object_id)
        if not _erase_allowed(actor=signed_in_user(request), user=user):
            raise PermissionDenied("Only a superuser can erase a staff account, never their own.")
        erasure = Erasure.objects.filter(user=user).first()
        if request.method == "POST" and request.POST.get("confirm") == "yes":
            try:
                erasure = account_erase(user=user, actor=signed_in_user(request))
            except ErasureIncomplete as exc:
                self.log_change(request, user, f"Erasure stopped: {exc}"[:500])
                self.message_user(
                    request,
                    f"Stripe did not answer, so nothing here was erased yet ({exc}). "
                    "Run it again: it carries on from where it stopped.",
                    messages.ERROR,
                )
            else:
                user.refresh_from_db()
                self.log_change(request, user, "Erased the personal data (privacy.Erasure)")
                self.message_user(request, f"Erased: the account is now {user}.")
            return HttpResponseRedirect(reverse("admin:accounts_user_change", args=[user.pk]))
        return self._page(
            request,
            "erase.html",
            title=f"Erase the personal data of {user}?",
            original=user,
            erasure=erasure,
        )


def _erase_allowed(*, actor: User, user: User) -> bool:
    # A staff account is erased by a superuser, and nobody erases themselves here.
    return actor.pk != user.pk and (actor.is_superuser or not user.is_staff)


# What each staff action writes to the user's History (Django's LogEntry), beside the
# plan history and the outbox: the History is where staff look first for "who did what".


def _grant_message(override: PlanOverride) -> str:
    until = f"{override.expires_at:%Y-%m-%d %H:%M} UTC" if override.expires_at else "revoked"
    return f"Granted {override.get_plan_display()} until {until}: {override.reason}"[:500]


def _resync_message(change: PlanChange | None) -> str:
    if change is None:
        return "Resynced from Stripe: plan unchanged"
    return (
        f"Resynced from Stripe: {change.get_old_plan_display()} → {change.get_new_plan_display()}"
    )


def _csv_safe(value: str) -> str:
    # A cell starting with = + - @ is a formula to spreadsheet software.
    return f"'{value}" if value[:1] in ("=", "+", "-", "@") else value
