from __future__ import annotations

import pytest
from axes.models import AccessAttempt

from tests.helpers import PASSWORD

pytestmark = pytest.mark.django_db


def test_login_with_email_in_any_case(client, customer):
    response = client.post("/login/", {"login": "Customer@EXAMPLE.com", "password": PASSWORD})

    assert response.status_code == 302
    assert response["Location"] == "/"
    assert client.get("/").status_code == 200


def test_login_with_a_lookalike_of_the_address_signs_in_nobody(client, customer):
    # A Cyrillic o (U+043E) is not an "o": no account has that address.
    lookalike = customer.email.replace("o", "\u043e")
    response = client.post("/login/", {"login": lookalike, "password": PASSWORD})

    assert response.status_code == 200
    assert client.get("/profile/").status_code == 302


def test_login_with_wrong_password_fails_and_counts_for_the_lockout(client, customer):
    response = client.post("/login/", {"login": customer.email, "password": "nope"})

    assert response.status_code == 200
    assert "The email address and/or password you specified are not correct" in (
        response.content.decode()
    )
    assert AccessAttempt.objects.get().username == "customer@example.com"


def test_repeated_failures_lock_the_login_out(client, customer, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post("/login/", {"login": customer.email, "password": "nope"})

    response = client.post("/login/", {"login": customer.email, "password": PASSWORD})

    # allauth's login_failed limit answers before django-axes' lockout would.
    assert response.status_code == 200
    assert "Too many failed login attempts" in response.content.decode()
    assert client.get("/profile/").status_code == 302


def test_a_login_name_over_255_characters_is_a_failed_login_not_an_error(client):
    long_name = "a" * 300 + "@example.com"

    response = client.post("/login/", {"login": long_name, "password": "nope"})

    assert response.status_code == 200
    assert client.get("/profile/").status_code == 302


def test_logout_is_post_only(client, customer):
    client.force_login(customer)

    assert client.get("/logout/").status_code == 200  # asks first: a GET does nothing
    assert client.get("/profile/").status_code == 200  # still signed in

    response = client.post("/logout/")
    assert response.status_code == 302
    assert client.get("/profile/").status_code == 302  # signed out
    assert 'href="/signup/"' in client.get("/").content.decode()  # the landing page again


def test_password_change(client, customer):
    client.force_login(customer)
    new = "another-long-passphrase-77"
    response = client.post(
        "/password/change/",
        {"oldpassword": PASSWORD, "password1": new, "password2": new},
    )

    assert response.status_code == 302
    customer.refresh_from_db()
    assert customer.check_password(new)
