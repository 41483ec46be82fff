"""Fill the billing columns copied onto users (0004) from the rows they copy.

What billing.entitlements.billing_columns computes, frozen here in SQL: the status of
the newest subscription, the newest customer, the newest plan change ("newest" by
creation time, nulls oldest, the id breaking ties). One UPDATE per batch of users,
with correlated subqueries, so memory stays flat at any number of users.
"""

from django.db import migrations
from django.db.models import F, OuterRef, Subquery, Value
from django.db.models.fields.json import KT
from django.db.models.functions import Coalesce

BATCH = 2000


def billing_columns_backfill(apps, schema_editor):
    User = apps.get_model("accounts", "User")
    Customer = apps.get_model("djstripe", "Customer")
    Subscription = apps.get_model("djstripe", "Subscription")
    PlanChange = apps.get_model("billing", "PlanChange")
    db = schema_editor.connection.alias
    newest = (F("created").desc(nulls_last=True), F("id").desc())
    latest_sub = (
        Subscription.objects.using(db)
        .filter(customer__subscriber=OuterRef("pk"))
        .order_by(*newest)
        .annotate(status=KT("stripe_data__status"))
        .values("status")[:1]
    )
    latest_customer = Customer.objects.using(db).filter(subscriber=OuterRef("pk")).order_by(*newest)
    last_change = (
        PlanChange.objects.using(db)
        .filter(user=OuterRef("pk"))
        .order_by("-created_at", "-id")
        .values("created_at")[:1]
    )
    last_pk = 0
    while True:
        ids = list(
            User.objects.using(db)
            .filter(pk__gt=last_pk)
            .order_by("pk")
            .values_list("pk", flat=True)[:BATCH]
        )
        if not ids:
            break
        User.objects.using(db).filter(pk__gte=ids[0], pk__lte=ids[-1]).update(
            billing_status=Coalesce(Subquery(latest_sub), Value("")),
            stripe_customer_id=Coalesce(Subquery(latest_customer.values("id")[:1]), Value("")),
            stripe_customer_livemode=Subquery(latest_customer.values("livemode")[:1]),
            last_plan_change_at=Subquery(last_change),
        )
        last_pk = ids[-1]


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0004_user_billing_columns"),
        ("billing", "0006_webhookdelivery_process_again"),
        ("djstripe", "0003_2_11"),
    ]

    operations = [
        migrations.RunPython(billing_columns_backfill, migrations.RunPython.noop, elidable=True)
    ]
