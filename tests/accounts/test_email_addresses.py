"""One form per address (NFKC, case-folded), look-alikes refused wherever an address is
chosen, and the EmailAddress rows that existing accounts get (accounts migration 0006)."""

from __future__ import annotations

import importlib

import pytest
from allauth.account.models import EmailAddress
from django.apps import apps
from django.core.exceptions import ValidationError
from django.db import connection

from accounts.models import User, normalize_email
from tests.helpers import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        (" Ann@Example.COM ", "ann@example.com"),
        ("ａｎｎ@ｅｘａｍｐｌｅ.com", "ann@example.com"),  # noqa: RUF001 (fullwidth, on purpose)
        ("ſam@example.com", "sam@example.com"),  # noqa: RUF001 (long s, on purpose)
        ("STRASSE@example.com", "strasse@example.com"),
    ],
)
def test_addresses_are_stored_in_one_form(typed, stored):
    assert normalize_email(typed) == stored


def test_signup_stores_a_fullwidth_address_as_the_plain_one_and_finds_it_taken(client, customer):
    client.post(
        "/signup/",
        {"email": "ＣＵＳＴＯＭＥＲ@example.com", "password1": PASSWORD, "password2": PASSWORD},  # noqa: RUF001 (fullwidth, on purpose)
    )

    assert User.objects.count() == 1  # the owner is emailed instead


@pytest.mark.parametrize(
    "lookalike",
    ["customer@examp\u0131e.com", "cust\u043emer@example.com"],  # dotless i, Cyrillic o
)
def test_signup_refuses_a_lookalike_address(client, customer, lookalike):
    response = client.post(
        "/signup/", {"email": lookalike, "password1": PASSWORD, "password2": PASSWORD}
    )

    assert response.status_code == 200
    # Django's own check already refuses a non-ASCII local part; ours, any other.
    [error] = response.context["form"].errors["email"]
    assert "plain letters" in error or error == "Enter a valid email address."
    assert User.objects.count() == 1


def test_staff_cannot_give_an_account_a_lookalike_address(customer):
    customer.email = "cust\u043emer@example.com"

    with pytest.raises(ValidationError) as raised:
        customer.full_clean()

    assert "plain letters" in str(raised.value.message_dict["email"])


def test_existing_accounts_get_their_address_confirmed_only_for_staff(staff_user):
    migration = importlib.import_module("accounts.migrations.0006_email_addresses")
    EmailAddress.objects.all().delete()
    payer = User.objects.create_user("payer@example.com", PASSWORD)
    staff_user.refresh_from_db()

    class Editor:
        pass

    editor = Editor()
    editor.connection = connection  # type: ignore[attr-defined]
    migration.email_addresses_create(apps, editor)
    migration.email_addresses_create(apps, editor)  # safe to run again

    rows = {a.email: (a.primary, a.verified) for a in EmailAddress.objects.all()}
    assert rows == {payer.email: (True, False), staff_user.email: (True, True)}
