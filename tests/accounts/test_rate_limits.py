"""allauth's rate limits (ACCOUNT_RATE_LIMITS) answer 429 with the site's page, per client
address as accounts.ratelimit.client_ip reads it (the one django-axes uses)."""

from __future__ import annotations

import pytest

from accounts.models import User
from tests.helpers import PASSWORD

pytestmark = pytest.mark.django_db


def _signup(client, n: int, **extra):
    data = {"email": f"new{n}@example.com", "password1": PASSWORD, "password2": PASSWORD}
    return client.post("/signup/", data, **extra)


def test_signups_from_one_address_are_limited_with_a_clear_page(client):
    for n in range(10):
        assert _signup(client, n, REMOTE_ADDR="198.51.100.7").status_code == 302

    refused = _signup(client, 10, REMOTE_ADDR="198.51.100.7")
    other = _signup(client, 11, REMOTE_ADDR="198.51.100.8")

    assert refused.status_code == 429
    body = refused.content.decode()
    assert "Too many requests" in body
    assert "SmartFlow" in body  # the site's layout
    assert other.status_code == 302
    assert User.objects.count() == 11


def test_behind_a_proxy_the_client_is_the_address_it_forwarded(client, settings):
    settings.AXES_IPWARE_PROXY_COUNT = 1
    for n in range(10):
        _signup(client, n, REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.5")

    refused = _signup(client, 10, REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.5")
    other = _signup(client, 11, REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.6")

    assert (refused.status_code, other.status_code) == (429, 302)
