"""`make run`'s banner and the quiet sandbox log a newcomer sees first."""

from __future__ import annotations

import logging
from io import StringIO

import pytest
from django.core.management import CommandError, call_command


def _banner(*args: str) -> str:
    out = StringIO()
    call_command("run_banner", *args, stdout=out)
    return out.getvalue()


def test_the_banner_says_where_to_go_and_what_to_try(settings):
    settings.SITE_URL = "http://127.0.0.1:8123"
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"

    text = _banner()

    assert "http://127.0.0.1:8123/" in text
    assert "offline Stripe sandbox" in text
    assert "4242 4242 4242 4242" in text
    assert "pays" in text
    assert "4000 0000 0000 0002" in text
    assert "is declined" in text
    assert "4000 0000 0000 0341" in text
    assert "fails at renewal" in text
    assert "4000 0027 6000 3184" in text
    assert "3-D Secure on every payment" in text
    assert "4000 0025 0000 3155" in text
    assert "createsuperuser" in text
    assert "DJANGO_SUPERUSER_EMAIL=" in text
    assert "DJANGO_SUPERUSER_PASSWORD=" in text
    assert "http://127.0.0.1:8123/admin/" in text
    assert "Emails are printed in this terminal" in text


def test_the_banner_tells_the_truth_without_the_sandbox(settings):
    settings.STRIPE_SANDBOX = False
    settings.BILLING_ENABLED = False
    settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"

    text = _banner()

    assert "4242" not in text
    assert "Payments: off" in text
    assert "printed in this terminal" not in text


@pytest.mark.django_db(transaction=True)
def test_the_banner_waits_for_the_server_to_answer(live_server):
    address = live_server.url.removeprefix("http://")

    assert "SmartFlow is running: open" in _banner("--wait", address, "--timeout", "30")


def test_the_banner_gives_up_on_a_server_that_never_answers():
    with pytest.raises(CommandError, match=r"No web server answered on 127\.0\.0\.1:9"):
        _banner("--wait", "127.0.0.1:9", "--timeout", "1")


def test_the_banner_refuses_an_address_without_a_port():
    with pytest.raises(CommandError, match="HOST:PORT"):
        _banner("--wait", "localhost")


@pytest.mark.django_db
def test_in_sandbox_mode_stripe_python_logs_only_warnings_and_the_sandbox_one_line(
    settings, caplog
):
    # stripe-python's INFO lines name api.stripe.com, which reads as if real Stripe
    # were being called; in sandbox mode they are off and the sandbox says what it did.
    assert settings.STRIPE_SANDBOX
    assert logging.getLogger("stripe").getEffectiveLevel() == logging.WARNING

    import stripe

    with caplog.at_level(logging.INFO):
        stripe.Account.retrieve(api_key=settings.STRIPE_TEST_SECRET_KEY)

    lines = [r.getMessage() for r in caplog.records]
    assert not [line for line in lines if "api.stripe.com" in line]
    assert "Stripe sandbox: GET /v1/account -> 200" in lines


@pytest.mark.django_db
def test_the_banner_waits_until_the_sandboxs_pending_webhooks_are_delivered(monkeypatch):
    # Otherwise the worker's lines for the catalogue's webhooks scroll the banner away.
    from devtools.stripe_sandbox.models import Delivery
    from smartflow.management.commands import run_banner

    pending = Delivery.objects.create(event_id="evt_banner", endpoint_id="we_banner")
    naps: list[float] = []

    def nap(seconds: float) -> None:
        naps.append(seconds)
        Delivery.objects.filter(pk=pending.pk).update(state=Delivery.State.SUCCEEDED)

    monkeypatch.setattr(run_banner.time, "sleep", nap)
    run_banner.Command()._quiet()

    assert naps == [0.5]  # waited once, then saw nothing left to deliver
