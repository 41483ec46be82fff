from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.test import override_settings

from accounts.ratelimit import client_ip
from smartflow.settings import _duration
from tests.helpers import PASSWORD

pytestmark = pytest.mark.django_db


def _login(client, email: str, password: str, *, ip: str = "198.51.100.7", url: str = "/login/"):
    # allauth's customer login posts the address as "login", the admin's as "username".
    field = "login" if url == "/login/" else "username"
    return client.post(url, {field: email, "password": password}, REMOTE_ADDR=ip)


@override_settings(AXES_FAILURE_LIMIT=3)
def test_repeated_failures_lock_that_account_from_that_ip(client, customer):
    statuses = [_login(client, customer.email, "wrong").status_code for _ in range(3)]

    locked = _login(client, customer.email, PASSWORD)
    other_ip = _login(client, customer.email, PASSWORD, ip="198.51.100.8")

    assert statuses == [200, 200, 429]
    assert locked.status_code == 429
    assert "Too many sign-in attempts" in locked.content.decode()
    assert "SmartFlow" in locked.content.decode()  # the site's own page (base.html)
    assert other_ip.status_code == 302


@override_settings(AXES_FAILURE_LIMIT=2)
def test_changing_the_case_of_the_email_does_not_reset_the_count(client, customer):
    _login(client, "Customer@Example.com", "wrong")
    _login(client, "CUSTOMER@example.com", "wrong")

    assert _login(client, customer.email, PASSWORD).status_code == 429


@override_settings(AXES_FAILURE_LIMIT=2, AXES_COOLOFF_TIME=timedelta(minutes=30))
def test_login_works_again_after_the_cool_off(client, customer):
    for _ in range(2):
        _login(client, customer.email, "wrong")
    assert _login(client, customer.email, PASSWORD).status_code == 429

    AccessAttempt.objects.update(
        attempt_time=AccessAttempt.objects.get().attempt_time - timedelta(minutes=31)
    )

    assert _login(client, customer.email, PASSWORD).status_code == 302


@override_settings(AXES_FAILURE_LIMIT=2)
def test_the_admin_login_is_rate_limited_too(client, staff_user):
    url = "/admin/login/"
    for _ in range(2):
        _login(client, staff_user.email, "wrong", url=url)

    assert _login(client, staff_user.email, PASSWORD, url=url).status_code == 429
    assert _login(client, staff_user.email, PASSWORD, url=url, ip="198.51.100.9").status_code == 302


@pytest.mark.parametrize(
    ("count", "forwarded", "expected"),
    [
        (0, "203.0.113.9", "10.0.0.1"),  # no proxy: the header is the client's own word
        (1, "203.0.113.9", "203.0.113.9"),
        (1, "6.6.6.6, 203.0.113.9", "203.0.113.9"),  # a forged entry to the left is ignored
        (2, "6.6.6.6, 203.0.113.9, 10.0.0.2", "203.0.113.9"),
        (2, "203.0.113.9", "10.0.0.1"),  # did not come through both proxies
    ],
)
def test_client_ip_behind_the_configured_number_of_proxies(rf, count, forwarded, expected):
    request = rf.get("/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=forwarded)

    with override_settings(AXES_IPWARE_PROXY_COUNT=count):
        assert client_ip(request) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", timedelta(hours=1)), ("2h", timedelta(hours=2)), ("30m", timedelta(minutes=30))],
)
def test_cool_off_is_read_in_hours_or_minutes(value, expected):
    assert _duration(value) == expected


@pytest.mark.parametrize("url", ["/login/", "/admin/login/"])
def test_a_login_name_over_255_characters_is_refused_as_a_failed_login(client, url):
    """django-axes stores at most 255 characters of a username: a longer one is counted
    under its first 255 (on PostgreSQL it was a 500), and the login fails as any other."""
    response = _login(client, "a" * 300 + "@example.com", "wrong", url=url)

    assert response.status_code == 200
    assert "/admin/" not in response.get("Location", "")
    assert client.get("/profile/").status_code == 302
