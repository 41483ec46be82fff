"""Every onboarding test runs with the outbox's test settings (tests/conftest.py:
onboarding_settings); the fakes and helpers are in tests/onboarding/helpers.py."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _onboarding_settings(onboarding_settings: None) -> None:
    """onboarding_settings for every test in this folder."""
