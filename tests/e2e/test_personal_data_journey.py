from __future__ import annotations

import json
from pathlib import Path

import pytest

from accounts.models import User
from privacy.models import Erasure
from tests.e2e.helpers import assert_fits, shot, sign_up
from tests.helpers import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_customer_downloads_their_data_then_deletes_their_account(page, live_server):
    site = live_server.url
    sign_up(page, site, "leaving@example.com", PASSWORD)

    page.goto(f"{site}/profile/")
    for width in (375, 1280):
        assert_fits(page, width)
    with page.expect_download() as download:
        page.get_by_role("button", name="Download my data").click()
    data = json.loads(Path(download.value.path()).read_text())
    page.get_by_role("link", name="Delete my account").click()
    page.wait_for_url(f"{site}/profile/delete/")
    shot(page, "account-delete")
    assert_fits(page, 375)
    page.get_by_label("Your password").fill(PASSWORD)
    page.get_by_role("button", name="Delete my account").click()
    page.wait_for_url(f"{site}/")

    assert data["profile"]["email"] == "leaving@example.com"
    assert download.value.suggested_filename.startswith("smartflow-my-data-")
    assert "Your account and your personal data have been deleted." in page.content()
    assert not User.objects.filter(email="leaving@example.com").exists()
    assert Erasure.objects.get().state == Erasure.State.DONE
    page.goto(f"{site}/profile/")
    assert "/login/" in page.url
