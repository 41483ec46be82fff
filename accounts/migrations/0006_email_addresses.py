"""An allauth EmailAddress (primary) for every existing user, so that confirmations,
email changes and the payment gate (User.email_verified) see every account.

Verified only for staff (their addresses were set by staff). Customers confirm at their
next login (ACCOUNT_EMAIL_VERIFICATION "mandatory" sends the link then) and before they
pay: nothing until now proved a customer's address, and having paid proves nothing
either (the bug this closes gave a pre-registered, unconfirmed account the payment of
the address's owner). Existing rows are left as they are, so this can run again.
"""

from django.db import migrations

BATCH = 2000


def email_addresses_create(apps, schema_editor):
    User = apps.get_model("accounts", "User")
    EmailAddress = apps.get_model("account", "EmailAddress")
    db = schema_editor.connection.alias
    last_pk = 0
    while True:
        users = list(
            User.objects.using(db)
            .filter(pk__gt=last_pk, emailaddress__isnull=True)
            .order_by("pk")
            .values_list("pk", "email", "is_staff")[:BATCH]
        )
        if not users:
            return
        EmailAddress.objects.using(db).bulk_create(
            [
                EmailAddress(user_id=pk, email=email, primary=True, verified=is_staff)
                for pk, email, is_staff in users
            ]
        )
        last_pk = users[-1][0]


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0005_user_billing_columns_backfill"),
        ("account", "0009_emailaddress_unique_primary_email"),
    ]

    operations = [migrations.RunPython(email_addresses_create, migrations.RunPython.noop)]
