from __future__ import annotations

import pytest
from allauth.account.models import EmailAddress
from django.core.cache import cache

from accounts.models import User
from tests.accounts.helpers import emails_sent, link_in
from tests.helpers import PASSWORD

pytestmark = pytest.mark.django_db

SITE_URL = "https://app.smartflowsystems.com"


@pytest.fixture(autouse=True)
def site_url(settings) -> None:
    settings.SITE_URL = SITE_URL


def _signup(client, **overrides):
    data = {"email": "Ann@Example.com", "password1": PASSWORD, "password2": PASSWORD}
    data.update(overrides)
    return client.post("/signup/", data)


def test_signup_creates_the_account_and_asks_to_confirm_the_address(client):
    response = _signup(client)

    assert response.status_code == 302
    assert response["Location"] == "/confirm-email/"
    user = User.objects.get()
    assert user.email == "ann@example.com"  # stored normalised
    assert user.plan == "starter"
    assert not user.email_verified
    assert client.get("/profile/").status_code == 302  # not signed in yet
    [message] = emails_sent()
    assert message.to == ["ann@example.com"]
    assert message.subject == "SmartFlow: Confirm your email address"


def test_the_confirmation_link_confirms_the_address_and_signs_in(client):
    _signup(client, next="/pricing/")
    [message] = emails_sent()
    link = link_in(message, "/confirm-email/")
    assert link.startswith(f"{SITE_URL}/confirm-email/")

    page = client.get(link.removeprefix(SITE_URL))
    assert page.status_code == 200  # asks before it confirms (a mail scanner's GET does nothing)
    assert not User.objects.get().email_verified
    response = client.post(link.removeprefix(SITE_URL))

    assert response.status_code == 302
    assert User.objects.get().email_verified
    assert client.get("/profile/").status_code == 200


def test_an_unconfirmed_account_cannot_log_in_and_gets_the_link_again(client):
    _signup(client)
    emails_sent()

    response = client.post("/login/", {"login": "ann@example.com", "password": PASSWORD})

    assert response["Location"] == "/confirm-email/"
    assert client.get("/profile/").status_code == 302
    # Not twice within the cooldown (ACCOUNT_RATE_LIMITS confirm_email); after it, again.
    assert len(emails_sent()) == 1
    cache.clear()
    client.post("/login/", {"login": "ann@example.com", "password": PASSWORD})
    assert [m.subject for m in emails_sent()] == ["SmartFlow: Confirm your email address"] * 2


def test_a_taken_address_gets_the_same_answer_and_its_owner_an_email(client, customer):
    new = _signup(client, email="new@example.com")
    taken = _signup(client, email="CUSTOMER@example.COM")

    assert (taken.status_code, taken["Location"]) == (new.status_code, new["Location"])
    assert User.objects.count() == 2
    to_owner = [m for m in emails_sent() if m.to == ["customer@example.com"]]
    assert [m.subject for m in to_owner] == ["SmartFlow: You already have an account"]
    assert link_in(to_owner[0], "/password/reset/") == f"{SITE_URL}/password/reset/"


def test_passwords_must_pass_validators(client):
    response = _signup(client, password1="12345678", password2="12345678")

    assert response.status_code == 200
    assert "This password is too common" in response.content.decode()
    assert not User.objects.exists()


def test_invalid_phone_is_refused(client):
    response = _signup(client, phone="12345")

    assert response.status_code == 200
    assert "Enter a valid phone number" in response.content.decode()
    assert not User.objects.exists()


def test_phone_is_stored_in_e164(client, twilio):
    _signup(client, phone="07911 123456", sms_opt_in="on")

    user = User.objects.get()
    assert str(user.phone) == "+447911123456"
    assert user.sms_opt_in is True


def test_an_invalid_phone_with_sms_ticked_gets_one_error_under_the_phone(client, twilio):
    response = _signup(client, phone="12345", sms_opt_in="on")

    errors = response.context["form"].errors
    assert list(errors) == ["phone"]
    [message] = errors["phone"]
    assert message.startswith("Enter a valid phone number")
    assert "Add a mobile number" not in response.content.decode()
    assert not User.objects.exists()


def test_password_strength_errors_are_under_the_password_not_the_confirmation(client):
    response = _signup(client, password1="12345678", password2="12345678")

    errors = response.context["form"].errors
    assert "This password is too common." in errors["password1"]
    assert "password2" not in errors


def test_a_mismatched_confirmation_is_the_only_error_under_the_confirmation(client):
    response = _signup(client, password2=PASSWORD + "x")

    errors = response.context["form"].errors
    assert list(errors) == ["password2"]


def test_sms_consent_defaults_off(client):
    _signup(client, phone="+447911123456")

    assert User.objects.get().sms_opt_in is False


def test_sms_consent_without_phone_is_refused(client, twilio):
    response = _signup(client, sms_opt_in="on")

    assert response.status_code == 200
    assert "Add a mobile number to receive SMS" in response.content.decode()
    assert not User.objects.exists()


def test_signup_ignores_a_posted_plan(client):
    _signup(client, plan="launchpack")

    assert User.objects.get().plan == "starter"


def test_signup_records_the_address_unconfirmed_and_primary(client):
    _signup(client)

    [address] = EmailAddress.objects.all()
    assert (address.email, address.primary, address.verified) == ("ann@example.com", True, False)


def test_email_must_be_unique_in_the_database_whatever_the_case(customer):
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.bulk_create([User(email="Customer@Example.com")])


@pytest.mark.django_db(transaction=True)
def test_simultaneous_signups_of_one_new_address_make_one_account_and_answer_alike():
    """Two requests, each on its own thread and database connection, both past the
    "already exists" check before either inserts: as two browsers at the same moment."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection, connections, transaction
    from django.test import Client

    if connection.vendor != "postgresql":
        pytest.skip(
            "PostgreSQL only: it takes a table lock to hold both inserts back until both "
            "checks have run; SQLite's in-memory test database cannot be shared that way"
        )

    def signup(email: str):
        try:
            return _signup(Client(), email=email)
        finally:
            connections.close_all()  # this thread's own connection

    with ThreadPoolExecutor(2) as pool:
        with transaction.atomic(), connection.cursor() as cursor:
            # Inserts wait behind this lock; the reads of the checks do not.
            cursor.execute("LOCK TABLE accounts_user IN SHARE ROW EXCLUSIVE MODE")
            futures = [pool.submit(signup, email) for email in ("a@x.test", "A@x.test")]
            deadline = time.monotonic() + 60
            waiting = 0
            while waiting < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
                cursor.execute(
                    "SELECT count(*) FROM pg_locks WHERE NOT granted"
                    " AND relation = 'accounts_user'::regclass"
                )
                waiting = cursor.fetchone()[0]
            assert waiting == 2, "both signups should be waiting to insert"
        responses = [future.result(timeout=60) for future in futures]

    assert [(r.status_code, r["Location"]) for r in responses] == [(302, "/confirm-email/")] * 2
    assert User.objects.get().email == "a@x.test"
