"""Staff members' two-factor authenticators (django-allauth's mfa app): superusers only.

A superuser resets a staff member's two-factor login for a lost device by deleting their
authenticator app here (docs/staff-2fa.md); their recovery codes go with it, as when
allauth switches an app off. Nothing is added or edited here: staff enrol themselves.
"""

from __future__ import annotations

from typing import Any

from allauth.mfa import admin as allauth_mfa_admin
from allauth.mfa.base.internal.flows import delete_dangling_recovery_codes
from allauth.mfa.models import Authenticator
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts.models import User


@admin.display(description="User", ordering="user__email")
def _user(authenticator: Authenticator) -> str:
    return str(authenticator.user)


class AuthenticatorAdmin(allauth_mfa_admin.AuthenticatorAdmin):
    list_display = (_user, "type", "created_at", "last_used_at")
    search_fields = ("user__email",)
    list_select_related = ("user",)
    # The secret and the codes are never shown.
    fields = ("user", "type", "created_at", "last_used_at")
    readonly_fields = fields

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser

    def delete_model(self, request: HttpRequest, obj: Authenticator) -> None:
        super().delete_model(request, obj)
        delete_dangling_recovery_codes(obj.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Authenticator]) -> None:
        users = list(User.objects.filter(pk__in=queryset.values("user_id")))
        super().delete_queryset(request, queryset)
        for user in users:
            delete_dangling_recovery_codes(user)


admin.site.unregister(Authenticator)
admin.site.register(Authenticator, AuthenticatorAdmin)
