"""The cache (rate limits, used TOTP codes) is shared by every process: the database's,
its table made by `migrate`."""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection

cache_migration = importlib.import_module("smartflow.migrations.0003_cache_table")


def test_the_default_cache_is_the_databases_so_every_process_counts_the_same_limits():
    assert settings.CACHES["default"]["BACKEND"] == "django.core.cache.backends.db.DatabaseCache"


@pytest.mark.django_db
def test_migrate_makes_the_cache_table_where_it_is_missing():
    table = settings.CACHES["default"]["LOCATION"]
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {connection.ops.quote_name(table)}")
    assert table not in connection.introspection.table_names()

    # What `migrate` hands a RunPython function: only its connection is used.
    cache_migration.cache_table_create(None, SimpleNamespace(connection=connection))

    assert table in connection.introspection.table_names()
    cache.set("limit", 3)
    assert cache.get("limit") == 3
