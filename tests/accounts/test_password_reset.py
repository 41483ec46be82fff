from __future__ import annotations

import re

import pytest

from accounts.models import User

pytestmark = pytest.mark.django_db

SITE_URL = "https://app.smartflowsystems.com"


@pytest.fixture(autouse=True)
def site_url(settings) -> None:
    settings.SITE_URL = SITE_URL


def _reset_link(mailoutbox) -> str:
    [message] = mailoutbox
    return next(line for line in message.body.splitlines() if "/password/reset/" in line)


def _choose_password(client, link: str, new: str = "brand-new-passphrase-99") -> str:
    form_url = client.get(link.removeprefix(SITE_URL))["Location"]  # token -> session
    done = client.post(form_url, {"new_password1": new, "new_password2": new})
    assert done["Location"] == "/password/reset/complete/"
    return new


def test_reset_link_comes_from_site_url_not_the_request_host(client, customer, mailoutbox):
    # 127.0.0.1 is an allowed host, and any port on it passes the Host check.
    client.post("/password/reset/", {"email": customer.email}, HTTP_HOST="127.0.0.1:6666")

    link = _reset_link(mailoutbox)
    assert link.startswith(f"{SITE_URL}/password/reset/")
    assert "6666" not in mailoutbox[0].body
    assert re.findall(r"https?://\S+", mailoutbox[0].body) == [link]


def test_account_without_a_password_gets_the_reset_email(client, mailoutbox):
    payer = User.objects.create_user("payer@example.com")  # made by the webhook: no password

    response = client.post("/password/reset/", {"email": "Payer@Example.com"})

    assert response["Location"] == "/password/reset/sent/"
    assert mailoutbox[0].to == ["payer@example.com"]
    new = _choose_password(client, _reset_link(mailoutbox))
    payer.refresh_from_db()
    assert payer.check_password(new)


def test_staff_added_without_a_password_can_choose_one(client, mailoutbox, settings):
    staff = User.objects.create_user("new.staff@smartflowsystems.com", is_staff=True)

    client.post("/password/reset/", {"email": staff.email})

    new = _choose_password(client, _reset_link(mailoutbox))
    client.logout()
    login = client.post(f"/{settings.ADMIN_URL}/login/", {"username": staff.email, "password": new})
    assert login.status_code == 302


def test_inactive_account_gets_no_email(client, mailoutbox):
    User.objects.create_user("gone@example.com", is_active=False)

    client.post("/password/reset/", {"email": "gone@example.com"})

    assert mailoutbox == []


def test_the_answer_does_not_tell_whether_the_account_exists(client, mailoutbox):
    User.objects.create_user("payer@example.com")

    known = client.post("/password/reset/", {"email": "payer@example.com"})
    unknown = client.post("/password/reset/", {"email": "nobody@example.com"})

    assert (known.status_code, known["Location"]) == (unknown.status_code, unknown["Location"])
    assert len(mailoutbox) == 1
