from __future__ import annotations

import re

import pytest

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
