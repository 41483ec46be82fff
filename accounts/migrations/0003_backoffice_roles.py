"""The back-office roles: groups "Support" and "Billing admin" with their permissions.

Permissions are normally created by a post_migrate signal, i.e. after every migration
has run, so on a fresh database they do not exist yet here: create them first.
Running it again resets each group to exactly these permissions.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

SUPPORT = [
    ("accounts", "view_user"),
    ("accounts", "resend_onboarding"),
    ("billing", "view_planchange"),
    ("billing", "view_planoverride"),
    ("billing", "grant_override"),
    ("billing", "revoke_override"),
    ("onboarding", "view_onboardingmessage"),
]

BILLING_ADMIN = SUPPORT + [
    ("accounts", "resync_billing"),
    ("accounts", "export_users"),
    ("billing", "view_oneoffpurchase"),
    ("billing", "view_billingalert"),
    ("billing", "change_billingalert"),
]

# Secrets: only superusers see these, whatever groups say (backoffice/admin/billing.py enforces it).
DJSTRIPE_SUPERUSER_ONLY = {"apikey", "webhookendpoint"}


def roles_create(apps, schema_editor):
    for app_config in apps.get_app_configs():
        # create_permissions skips apps without a models module, which every app of a
        # migration's historical registry is; restore the value afterwards, since tests
        # call this with the live registry too.
        models_module = getattr(app_config, "models_module", None)
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = models_module

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")

    def perms(pairs):
        found = []
        for app_label, codename in pairs:
            found.append(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
        return found

    djstripe_views = Permission.objects.filter(
        content_type__app_label="djstripe", codename__startswith="view_"
    ).exclude(codename__in=[f"view_{m}" for m in DJSTRIPE_SUPERUSER_ONLY])

    support, _ = Group.objects.get_or_create(name="Support")
    support.permissions.set(perms(SUPPORT))
    billing_admin, _ = Group.objects.get_or_create(name="Billing admin")
    billing_admin.permissions.set([*perms(BILLING_ADMIN), *djstripe_views])


def roles_delete(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=["Support", "Billing admin"]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_user_backoffice_permissions"),
        ("billing", "0002_planoverride_permissions"),
        ("djstripe", "0003_2_11"),
        ("onboarding", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(roles_create, roles_delete)]
