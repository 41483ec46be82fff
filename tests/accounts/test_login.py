from __future__ import annotations

import pytest

from tests.helpers import PASSWORD

pytestmark = pytest.mark.django_db


def test_login_with_email_in_any_case(client, customer):
    response = client.post("/login/", {"username": "Customer@EXAMPLE.com", "password": PASSWORD})

    assert response.status_code == 302
    assert response["Location"] == "/"
    assert client.get("/").status_code == 200


def test_login_with_wrong_password_fails(client, customer):
    response = client.post("/login/", {"username": customer.email, "password": "nope"})

    assert response.status_code == 200
    assert "Please enter a correct email address and password" in response.content.decode()


def test_logout_is_post_only(client, customer):
    client.force_login(customer)

    assert client.get("/logout/").status_code == 405
    assert client.get("/").status_code == 200  # still signed in

    response = client.post("/logout/")
    assert response.status_code == 302
    assert client.get("/profile/").status_code == 302  # signed out
    assert 'href="/signup/"' in client.get("/").content.decode()  # the landing page again


def test_password_change(client, customer):
    client.force_login(customer)
    new = "another-long-passphrase-77"
    response = client.post(
        "/password/change/",
        {"old_password": PASSWORD, "new_password1": new, "new_password2": new},
    )

    assert response["Location"] == "/password/change/done/"
    customer.refresh_from_db()
    assert customer.check_password(new)


def test_password_reset_sends_a_working_link(client, customer, mailoutbox, settings):
    response = client.post("/password/reset/", {"email": customer.email})

    assert response["Location"] == "/password/reset/sent/"
    assert len(mailoutbox) == 1
    link = next(line for line in mailoutbox[0].body.splitlines() if "/password/reset/" in line)
    path = link.removeprefix(settings.SITE_URL)
    form_url = client.get(path)["Location"]  # Django swaps the token for a session
    new = "brand-new-passphrase-99"
    done = client.post(form_url, {"new_password1": new, "new_password2": new})
    assert done["Location"] == "/password/reset/complete/"
    customer.refresh_from_db()
    assert customer.check_password(new)
