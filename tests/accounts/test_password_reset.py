from __future__ import annotations

import re

import pytest
from allauth.account.models import EmailAddress

from accounts.models import User
from onboarding.models import OnboardingMessage
from tests.accounts.helpers import emails_sent, link_in

pytestmark = pytest.mark.django_db

SITE_URL = "https://app.smartflowsystems.com"


@pytest.fixture(autouse=True)
def site_url(settings) -> None:
    settings.SITE_URL = SITE_URL


def _reset_link() -> str:
    [message] = emails_sent()
    return link_in(message, "/password/reset/key/")


def _choose_password(client, link: str, new: str = "brand-new-passphrase-99") -> str:
    form_url = client.get(link.removeprefix(SITE_URL))["Location"]  # token -> session
    done = client.post(form_url, {"password1": new, "password2": new})
    assert done["Location"] == "/password/reset/key/done/"
    return new


def test_reset_link_comes_from_site_url_not_the_request_host(client, customer):
    # 127.0.0.1 is an allowed host, and any port on it passes the Host check.
    client.post("/password/reset/", {"email": customer.email}, HTTP_HOST="127.0.0.1:6666")

    link = _reset_link()
    assert link.startswith(f"{SITE_URL}/password/reset/key/")
    [message] = emails_sent()
    assert "6666" not in message.body


def test_the_email_is_queued_in_the_outbox_not_sent_by_the_request(client, customer, mailoutbox):
    client.post("/password/reset/", {"email": customer.email})

    assert mailoutbox == []
    [queued] = OnboardingMessage.objects.all()
    assert (queued.template, queued.recipient, queued.user) == ("account", customer.email, customer)
    assert len(emails_sent()) == 1


def test_a_provider_outage_retries_the_email_instead_of_losing_it(
    client, customer, settings, onboarding_settings
):
    from tests.onboarding import helpers as onb

    onb.ScriptedEmailBackend.script = [onb.esp_error(503)]
    client.post("/password/reset/", {"email": customer.email})

    assert emails_sent() == []
    queued = OnboardingMessage.objects.get()
    assert (queued.status, queued.attempts) == ("queued", 1)
    OnboardingMessage.objects.filter(pk=queued.pk).update(next_attempt_at=None)
    [message] = emails_sent()
    assert message.to == [customer.email]


def test_account_without_a_password_gets_the_reset_email_and_is_confirmed_by_it(client):
    payer = User.objects.create_user("payer@example.com")  # made by the webhook: no password

    response = client.post("/password/reset/", {"email": "Payer@Example.com"})

    assert response["Location"] == "/password/reset/done/"
    new = _choose_password(client, _reset_link())
    payer.refresh_from_db()
    assert payer.check_password(new)
    assert payer.email_verified


def test_staff_added_without_a_password_can_choose_one(client, settings):
    staff = User.objects.create_user("new.staff@smartflowsystems.com", is_staff=True)

    client.post("/password/reset/", {"email": staff.email})

    new = _choose_password(client, _reset_link())
    client.logout()
    login = client.post(f"/{settings.ADMIN_URL}/login/", {"username": staff.email, "password": new})
    assert login.status_code == 302


def test_inactive_account_gets_no_reset_link(client):
    User.objects.create_user("gone@example.com", is_active=False)

    client.post("/password/reset/", {"email": "gone@example.com"})

    assert all("/password/reset/key/" not in m.body for m in emails_sent())


def test_the_answer_does_not_tell_whether_the_account_exists(client):
    User.objects.create_user("payer@example.com")

    known = client.post("/password/reset/", {"email": "payer@example.com"})
    unknown = client.post("/password/reset/", {"email": "nobody@example.com"})

    assert (known.status_code, known["Location"]) == (unknown.status_code, unknown["Location"])
    # Both get an email, queued alike: the reset link, or "no account with this address".
    by_address = {m.to[0]: m for m in emails_sent()}
    assert "/password/reset/key/" in by_address["payer@example.com"].body
    assert "no account with this address" in by_address["nobody@example.com"].body
    links = re.findall(r"https?://\S+", by_address["nobody@example.com"].body)
    assert f"{SITE_URL}/signup/" in links
    assert all(link.startswith(SITE_URL) for link in links)


def test_resets_are_limited_per_address(client, customer):
    for _ in range(5):
        assert client.post("/password/reset/", {"email": customer.email}).status_code == 302

    response = client.post("/password/reset/", {"email": customer.email})

    assert response.status_code == 429
    assert "Too many requests" in response.content.decode()
    assert len(emails_sent()) == 5


def test_reset_is_refused_for_a_lookalike_address(client, customer):
    response = client.post("/password/reset/", {"email": "customer@ex\u0430mple.com"})  # Cyrillic a

    assert response.status_code == 200
    assert "plain letters" in response.content.decode()
    assert emails_sent() == []
    assert not EmailAddress.objects.filter(email__contains="\u0430").exists()
