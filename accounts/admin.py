from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm

from accounts.models import User


class _UserChangeForm(UserChangeForm):
    class Meta:
        model = User
        fields = "__all__"


class _UserCreationForm(AdminUserCreationForm):
    class Meta:
        model = User
        fields = ("email",)


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    form = _UserChangeForm
    add_form = _UserCreationForm
    list_display = ("email", "plan", "is_staff", "date_joined")
    list_filter = ("plan", "is_staff", "is_superuser", "is_active")
    search_fields = ("email", "phone")
    ordering = ("-date_joined",)
    readonly_fields = ("date_joined", "last_login", "updated_at")
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Plan", {"fields": ("plan",)}),
        ("Contact", {"fields": ("phone", "sms_opt_in")}),
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
