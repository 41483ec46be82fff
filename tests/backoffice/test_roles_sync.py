"""backoffice.roles is the one definition of the staff groups; roles_sync applies it."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission

from backoffice.roles import BILLING_ADMIN, ROLES, SUPPORT, roles_sync

pytestmark = pytest.mark.django_db


def _codenames(name: str) -> set[tuple[str, str]]:
    return {
        (p.content_type.app_label, p.codename)
        for p in Group.objects.get(name=name).permissions.select_related("content_type")
    }


def test_sync_resets_each_group_to_exactly_its_list():
    roles_sync()
    support = Group.objects.get(name="Support")
    support.permissions.add(Permission.objects.get(codename="export_users"))
    Group.objects.get(name="Billing admin").permissions.clear()

    roles_sync()
    roles_sync()  # idempotent

    assert _codenames("Support") == set(SUPPORT)
    billing_admin = _codenames("Billing admin")
    assert set(BILLING_ADMIN) <= billing_admin
    assert {a for a, _ in billing_admin - set(BILLING_ADMIN)} == {"djstripe"}
    assert ("djstripe", "view_apikey") not in billing_admin
    assert ("djstripe", "view_webhookendpoint") not in billing_admin
    assert ("djstripe", "view_invoice") in billing_admin
    assert Group.objects.filter(name__in=ROLES).count() == len(ROLES)


def test_a_role_naming_a_missing_permission_is_a_clear_error(monkeypatch):
    from django.core.exceptions import ImproperlyConfigured

    monkeypatch.setitem(ROLES, "Support", ([("billing", "no_such_permission")], False))

    with pytest.raises(ImproperlyConfigured, match=r"billing\.no_such_permission"):
        roles_sync()
