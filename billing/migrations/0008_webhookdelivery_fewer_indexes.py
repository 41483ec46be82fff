# Drops the two indexes no query uses (state alone, and LIKE on event_id) and keeps
# event_id unique by a named constraint: fewer index entries per acknowledgement.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('billing', '0007_webhookdelivery_permissions'),
        ('djstripe', '0003_2_11'),
    ]

    operations = [
        migrations.AlterField(
            model_name='webhookdelivery',
            name='event_id',
            field=models.CharField(max_length=255),
        ),
        migrations.AlterField(
            model_name='webhookdelivery',
            name='state',
            field=models.CharField(choices=[('pending', 'Waiting to be processed'), ('processed', 'Processed'), ('failed', 'Failed (not retried)'), ('gave_up', 'Gave up after retrying for three days')], default='pending', max_length=20),
        ),
        migrations.AddConstraint(
            model_name='webhookdelivery',
            constraint=models.UniqueConstraint(fields=('event_id',), name='billing_delivery_event_id_unique'),
        ),
    ]
