from __future__ import annotations

import pytest

from accounts.models import User
from tests.helpers import PASSWORD

pytestmark = pytest.mark.django_db


def _signup(client, **overrides):
    data = {"email": "Ann@Example.com", "password1": PASSWORD, "password2": PASSWORD}
    data.update(overrides)
    return client.post("/signup/", data)


def test_signup_creates_user_logs_in_and_redirects_to_dashboard(client):
    response = _signup(client)

    assert response.status_code == 302
    assert response["Location"] == "/"
    user = User.objects.get()
    assert user.email == "ann@example.com"  # stored normalised
    assert user.plan == "starter"
    assert client.get("/").status_code == 200


def test_duplicate_email_in_another_case_is_refused(client, customer):
    response = _signup(client, email="CUSTOMER@example.COM")

    assert response.status_code == 200
    assert "An account with this email already exists" in response.content.decode()
    assert User.objects.count() == 1


def test_passwords_must_match_and_pass_validators(client):
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
    assert errors["password2"] == ["The two password fields didn’t match."]


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


def test_signup_returns_to_a_safe_next_and_ignores_an_offsite_one(client):
    assert _signup(client, next="/profile/")["Location"] == "/profile/"
    client.logout()
    response = _signup(client, email="bob@example.com", next="https://evil.example/")
    assert response["Location"] == "/"


def test_email_must_be_unique_in_the_database_whatever_the_case(customer):
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.bulk_create([User(email="Customer@Example.com")])


@pytest.mark.django_db(transaction=True)
def test_simultaneous_signups_of_one_new_address_make_one_account_and_one_form_error():
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

    assert sorted(r.status_code for r in responses) == [200, 302]
    [loser] = [r for r in responses if r.status_code == 200]
    assert list(loser.context["form"].errors) == ["email"]
    assert "An account with this email already exists" in loser.content.decode()
    assert User.objects.get().email == "a@x.test"
