from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from accounts.models import User
from backoffice.roles import roles_sync
from tests.helpers import PASSWORD


@pytest.fixture
def roles(db) -> None:
    """The groups as backoffice.roles defines them."""
    roles_sync()


def _member(email: str, group: str) -> User:
    user = User.objects.create_user(email, PASSWORD, is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def support_user(roles) -> User:
    return _member("support@smartflowsystems.com", "Support")


@pytest.fixture
def billing_admin(roles) -> User:
    return _member("billing@smartflowsystems.com", "Billing admin")
