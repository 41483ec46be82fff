"""The database cache's table (CACHES in smartflow/settings.py), made by `migrate` so that
every way the project is set up (make run, the deploy docs, a platform's release step,
the tests) has it without a separate `createcachetable` step. Does nothing when CACHE_URL
points the cache elsewhere; createcachetable skips a table that exists."""

from django.core.management import call_command
from django.db import migrations


def cache_table_create(apps, schema_editor) -> None:
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


class Migration(migrations.Migration):
    dependencies = [("smartflow", "0002_retention_run")]

    operations = [migrations.RunPython(cache_table_create, migrations.RunPython.noop)]
