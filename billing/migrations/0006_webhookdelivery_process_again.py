"""Webhook deliveries in the back-office: the "process_again" permission, and the
"Billing admin" role may view deliveries and process them again.

A data migration rather than Meta.permissions, so the model's state is unchanged. As in
accounts/migrations/0003_backoffice_roles.py, permissions are created here first (the
post_migrate signal that normally creates them runs after every migration). Running it
again changes nothing.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUP = "Billing admin"
CODENAME = "process_again"


def permissions_grant(apps, schema_editor):
    billing = apps.get_app_config("billing")
    models_module = getattr(billing, "models_module", None)
    billing.models_module = True  # create_permissions skips apps without one
    create_permissions(billing, apps=apps, verbosity=0)
    billing.models_module = models_module

    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    content_type, _ = ContentType.objects.get_or_create(
        app_label="billing", model="webhookdelivery"
    )
    process_again, _ = Permission.objects.get_or_create(
        content_type=content_type,
        codename=CODENAME,
        defaults={"name": "Can process a webhook delivery again"},
    )
    view = Permission.objects.get(content_type=content_type, codename="view_webhookdelivery")
    group = Group.objects.filter(name=GROUP).first()
    if group is not None:  # a deployment that removed the role keeps it removed
        group.permissions.add(view, process_again)


def permissions_revoke(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    Permission.objects.filter(content_type__app_label="billing", codename=CODENAME).delete()
    group = apps.get_model("auth", "Group").objects.filter(name=GROUP).first()
    if group is not None:
        group.permissions.remove(
            *Permission.objects.filter(
                content_type__app_label="billing", codename="view_webhookdelivery"
            )
        )


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0005_webhook_queue"),
        ("accounts", "0003_backoffice_roles"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(permissions_grant, permissions_revoke)]
