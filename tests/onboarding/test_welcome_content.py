from __future__ import annotations

from datetime import UTC, datetime

import pytest

from accounts.models import User
from billing.plans import Plan
from onboarding.sms import sms_segments
from onboarding.welcome import welcome_email_render, welcome_sms_render
from tests.onboarding.helpers import SITE_URL

# What each plan's email lists as unlocked, and the steps it gives.
UNLOCKS = {
    Plan.STARTER: ["Calendar sync", "Brand kit"],
    Plan.FLOWKIT: ["Calendar sync", "Brand kit", "SMS reminders", "Client import"],
    Plan.LAUNCHPACK: [
        "Calendar sync",
        "Brand kit",
        "SMS reminders",
        "Client import",
        "AI concierge",
    ],
}
LOCKED_STEPS = {
    Plan.STARTER: ["Turn on SMS reminders", "Import your client list"],
    Plan.FLOWKIT: [],
    Plan.LAUNCHPACK: [],
}


@pytest.mark.parametrize("plan", list(Plan))
def test_email_text_names_the_plan_what_it_unlocks_and_the_next_steps(buyer, plan):
    email = welcome_email_render(user=buyer, plan=plan)

    assert email.subject == "Your SmartFlow plan is live"
    assert email.text.startswith("Welcome to SmartFlow Systems 👋\n")
    assert f"You're on the '{plan.label}' plan." in email.text
    for feature in UNLOCKS[plan]:
        assert f"- {feature}\n" in email.text
    assert f"1) Connect your Google Calendar: {SITE_URL}/#feature-calendar_sync\n" in email.text
    assert f"2) Add your brand details (logo, colours): {SITE_URL}/#feature-brand_kit\n" in (
        email.text
    )
    assert "Settings →" not in email.text
    for step in LOCKED_STEPS[plan]:
        assert step not in email.text
    assert f"Your dashboard: {SITE_URL}/\n" in email.text
    assert "Need help? Reply to this email and our team will sort you." in email.text
    assert email.text.rstrip().endswith("— Team SmartFlow")
    assert "set a password" not in email.text
    assert "choose a password" not in email.text


def test_flowkit_email_text_lists_all_four_steps_in_the_customers_words(buyer):
    text = welcome_email_render(user=buyer, plan=Plan.FLOWKIT).text

    assert (
        "Here’s what to do next:\n"
        f"1) Connect your Google Calendar: {SITE_URL}/#feature-calendar_sync\n"
        f"2) Add your brand details (logo, colours): {SITE_URL}/#feature-brand_kit\n"
        f"3) Turn on SMS reminders: {SITE_URL}/profile/\n"
        f"4) (Optional) Import your client list: {SITE_URL}/#feature-client_import\n"
    ) in text


@pytest.mark.parametrize("plan", list(Plan))
def test_email_html_has_the_same_content_and_a_dashboard_link(buyer, plan):
    html = welcome_email_render(user=buyer, plan=plan).html

    assert "Welcome to SmartFlow Systems 👋" in html
    assert f"You're on the <strong>'{plan.label}'</strong> plan." in html
    for feature in UNLOCKS[plan]:
        assert f"<li>{feature}</li>" in html
    assert (
        f'<li><a href="{SITE_URL}/#feature-calendar_sync" style="color:#0b63ce">'
        "Connect your Google Calendar</a></li>"
    ) in html
    assert "Settings →" not in html
    assert f'href="{SITE_URL}/"' in html
    assert "— Team SmartFlow" in html
    assert "password" not in html


def test_account_made_by_the_webhook_gets_a_working_set_password_link(db, client):
    payer = User.objects.create_user("payer@example.com")  # no password: made by the webhook

    email = welcome_email_render(user=payer, plan=Plan.FLOWKIT)

    link = next(line for line in email.text.splitlines() if "/password/reset/" in line)
    assert link.startswith(f"{SITE_URL}/password/reset/")
    assert f'href="{link}"' in email.html
    response = client.get(link.removeprefix(SITE_URL), follow=True)
    assert 'name="password1"' in response.content.decode()  # the form, not "link expired"
    new = "brand-new-passphrase-99"
    client.post(response.redirect_chain[-1][0], {"password1": new, "password2": new})
    payer.refresh_from_db()
    assert payer.check_password(new)
    assert payer.email_verified  # the link went to the address: it is confirmed


def test_sms_text_names_the_plan():
    assert welcome_sms_render(plan=Plan.LAUNCHPACK) == (
        "SmartFlow: Your 'LaunchPack' plan is live. Check your dashboard to finish setup 🎯"
    )


def test_first_sms_to_a_number_says_how_to_opt_out():
    assert welcome_sms_render(plan=Plan.FLOWKIT, opt_out_notice=True) == (
        "SmartFlow: Your 'FlowKit' plan is live. Check your dashboard to finish setup 🎯 "
        "Reply STOP to opt out."
    )


@pytest.mark.parametrize("opt_out_notice", [False, True])
def test_welcome_sms_is_ucs2_and_takes_two_segments(opt_out_notice):
    # The emoji forces UCS-2: 70 code units fit one segment, and the text is longer.
    for plan in Plan:
        text = welcome_sms_render(plan=plan, opt_out_notice=opt_out_notice)
        assert 70 < len(text.encode("utf-16-le")) // 2 <= 2 * 67
        assert sms_segments(text) == 2


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),  # extension characters take two septets
        ("€" * 81, 2),
        ("é" * 70, 1),  # é is in the GSM alphabet
        ("ł" * 70, 1),  # ł is not: UCS-2
        ("ł" * 71, 2),
        ("ł" * 134, 2),
        ("ł" * 135, 3),
        ("🎯" * 35, 1),  # two UTF-16 code units each
        # 134 units, but the emoji's pair would straddle parts one and two: it moves.
        ("ł" * 66 + "🎯" + "ł" * 66, 3),
        ("", 1),
    ],
)
def test_segments_are_counted_per_encoding(text, segments):
    assert sms_segments(text) == segments


def test_each_step_links_to_a_place_on_the_dashboard_that_exists(buyer, client):
    # The anchors are the feature entries' ids on the dashboard the customer lands on.
    client.force_login(buyer)
    dashboard = client.get("/").content.decode()
    text = welcome_email_render(user=buyer, plan=Plan.LAUNCHPACK).text

    for anchor in ("calendar_sync", "brand_kit", "client_import"):
        assert f"{SITE_URL}/#feature-{anchor}\n" in text
        assert f'id="feature-{anchor}"' in dashboard
    assert client.get("/profile/").status_code == 200


def test_a_comp_with_an_expiry_says_until_when_it_runs(buyer):
    until = int(datetime(2027, 3, 1, 12, tzinfo=UTC).timestamp())

    email = welcome_email_render(user=buyer, plan=Plan.FLOWKIT, until=until)

    assert "Your 'FlowKit' plan runs until 1 March 2027." in email.text
    assert "runs until 1 March 2027." in email.html
    assert "runs until" not in welcome_email_render(user=buyer, plan=Plan.FLOWKIT).text
