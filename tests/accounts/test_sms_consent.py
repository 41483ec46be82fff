"""SMS consent needs a number that can receive SMS: a landline cannot (signup and profile)."""

from __future__ import annotations

import pytest

from accounts.models import User
from tests.helpers import PASSWORD

pytestmark = pytest.mark.django_db

LANDLINE = "+44 20 7946 0000"  # phonenumbers: FIXED_LINE (London)
MOBILE = "+44 7911 123456"
US_NUMBER = "+1 212 555 0100"  # FIXED_LINE_OR_MOBILE: may well be a mobile
LANDLINE_ERROR = "This is a landline number, which cannot receive SMS."


def _signup(client, **fields):
    data = {"email": "ann@example.com", "password1": PASSWORD, "password2": PASSWORD}
    return client.post("/signup/", data | fields)


def test_signup_refuses_sms_consent_for_a_landline_under_the_phone_field(client, twilio):
    response = _signup(client, phone=LANDLINE, sms_opt_in="on")

    assert response.status_code == 200
    assert response.context["form"].errors["phone"] == [
        f"{LANDLINE_ERROR} Enter a mobile number, or untick SMS."
    ]
    assert not User.objects.exists()


@pytest.mark.parametrize(
    ("phone", "opt_in"), [(LANDLINE, ""), (MOBILE, "on"), (US_NUMBER, "on")], ids=str
)
def test_signup_accepts_a_landline_without_consent_and_mobiles_with_it(
    client, twilio, phone, opt_in
):
    response = _signup(client, phone=phone, sms_opt_in=opt_in)

    assert response.status_code == 302
    assert User.objects.get().sms_opt_in is bool(opt_in)


def test_profile_refuses_sms_consent_for_a_landline_and_keeps_the_old_number(
    client, customer, twilio
):
    customer.phone, customer.sms_opt_in = MOBILE, True
    customer.save()
    client.force_login(customer)

    response = client.post("/profile/", {"phone": LANDLINE, "sms_opt_in": "on"})

    assert response.status_code == 200
    assert LANDLINE_ERROR in response.content.decode()
    customer.refresh_from_db()
    assert (str(customer.phone), customer.sms_opt_in) == ("+447911123456", True)


def test_profile_keeps_a_landline_once_sms_is_unticked(client, customer):
    client.force_login(customer)

    response = client.post("/profile/", {"phone": LANDLINE, "sms_opt_in": ""})

    assert response.status_code == 302
    customer.refresh_from_db()
    assert (str(customer.phone), customer.sms_opt_in) == ("+442079460000", False)
