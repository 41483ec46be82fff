from __future__ import annotations

import pytest

from accounts.models import User

PASSWORD = "correct-horse-battery-staple-42"


@pytest.fixture
def customer(db) -> User:
    return User.objects.create_user("customer@example.com", PASSWORD)


@pytest.fixture
def staff_user(db) -> User:
    return User.objects.create_superuser("staff@smartflowsystems.com", PASSWORD)


@pytest.fixture
def outsider(db) -> User:
    """A signed-up user with no business in the back-office."""
    return User.objects.create_user("outsider@example.com", PASSWORD)
