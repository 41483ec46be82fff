"""The staff roles: each group and exactly the permissions it grants.

This is the one place a role is defined. After every `migrate`, `roles_sync` (connected
in BackofficeConfig.ready) resets each group to exactly its list, so changing a role is
a one-line change here. accounts/migrations/0003_backoffice_roles.py and
billing/migrations/0006 are history: they made the first version of these groups.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import ImproperlyConfigured

SUPPORT = [
    ("accounts", "view_user"),
    ("accounts", "resend_onboarding"),
    ("billing", "view_planchange"),
    ("billing", "view_planoverride"),
    ("billing", "grant_override"),
    ("billing", "revoke_override"),
    ("onboarding", "view_onboardingmessage"),
]

BILLING_ADMIN = [
    *SUPPORT,
    ("accounts", "resync_billing"),
    ("accounts", "export_users"),
    ("billing", "view_oneoffpurchase"),
    ("billing", "view_billingalert"),
    ("billing", "change_billingalert"),
    ("billing", "view_webhookdelivery"),
    ("billing", "process_again"),
    # Erase a customer's personal data (docs/personal-data.md), and the erasure log.
    ("privacy", "erase_personal_data"),
    ("privacy", "view_erasure"),
    # The workers' heartbeats under "Background work" on the index.
    ("smartflow", "view_workerheartbeat"),
]

# Secrets: only superusers see these, whatever groups say (backoffice/admin/billing.py
# enforces it too).
DJSTRIPE_SUPERUSER_ONLY = {"apikey", "webhookendpoint"}

# Group name -> (its permissions, whether it may view dj-stripe's non-secret models).
ROLES: dict[str, tuple[list[tuple[str, str]], bool]] = {
    "Support": (SUPPORT, False),
    "Billing admin": (BILLING_ADMIN, True),
}


def _permissions(pairs: list[tuple[str, str]]) -> list[Permission]:
    found = []
    for app_label, codename in pairs:
        try:
            found.append(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
        except Permission.DoesNotExist as exc:
            raise ImproperlyConfigured(
                f"backoffice.roles names the permission {app_label}.{codename}, which does "
                "not exist."
            ) from exc
    return found


def roles_sync(using: str = "default", **kwargs: Any) -> None:
    """Create the role groups and reset each one to exactly its permissions (idempotent).

    Also a post_migrate receiver: the permissions are created first, since auth's own
    post_migrate receiver may not have run yet for every app.
    """
    for app_config in global_apps.get_app_configs():
        create_permissions(app_config, verbosity=0, using=using)
    djstripe_views = list(
        Permission.objects.using(using)
        .filter(content_type__app_label="djstripe", codename__startswith="view_")
        .exclude(codename__in=[f"view_{m}" for m in DJSTRIPE_SUPERUSER_ONLY])
    )
    for name, (pairs, djstripe) in ROLES.items():
        group, _ = Group.objects.using(using).get_or_create(name=name)
        group.permissions.set([*_permissions(pairs), *(djstripe_views if djstripe else [])])
