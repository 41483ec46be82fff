from __future__ import annotations

import pytest
from django.core import checks
from djstripe.models import WebhookEndpoint


def _deploy_errors() -> list[checks.CheckMessage]:
    return [
        m
        for m in checks.run_checks(include_deployment_checks=True, tags=[checks.Tags.security])
        if m.level >= checks.ERROR
    ]


def test_deploy_check_reports_an_error_while_the_sandbox_is_on(settings):
    settings.STRIPE_SANDBOX = True

    [error] = [m for m in _deploy_errors() if m.id == "billing.E001"]

    assert "anyone can get any plan" in error.msg


def test_deploy_check_is_silent_with_the_sandbox_off(settings):
    settings.STRIPE_SANDBOX = False

    assert not [m for m in _deploy_errors() if m.id == "billing.E001"]


def test_plain_check_leaves_the_sandbox_alone(settings):
    # `make bench` and the tests run the sandbox with DEBUG off; only --deploy refuses it.
    settings.STRIPE_SANDBOX = True

    assert not [m for m in checks.run_checks(tags=[checks.Tags.security]) if m.id == "billing.E001"]


def test_deploy_check_warns_while_the_webhook_debug_header_is_accepted(settings):
    settings.STRIPE_WEBHOOK_DEBUG_HEADER = True

    warnings = checks.run_checks(include_deployment_checks=True, tags=[checks.Tags.security])

    assert "billing.W001" in [m.id for m in warnings]


def _ids(**kwargs) -> list[str]:
    return [m.id for m in checks.run_checks(include_deployment_checks=True, **kwargs)]


@pytest.mark.parametrize(
    ("live", "test_key", "live_key", "refused"),
    [
        (True, "", "", "is not set"),
        (True, "sk_test_abc", "", "is not set"),
        (True, "", "sk_test_abc", "is not a live-mode secret key"),
        (False, "", "sk_live_abc", "is not set"),
        (False, "pk_test_abc", "", "is not a test-mode secret key"),
    ],
    ids=["live-none", "live-only-test-key", "live-test-key", "test-none", "test-publishable"],
)
def test_deploy_check_refuses_a_missing_or_wrong_stripe_key(
    settings, live, test_key, live_key, refused
):
    settings.STRIPE_SANDBOX = False
    settings.STRIPE_LIVE_MODE = live
    settings.STRIPE_TEST_SECRET_KEY = test_key
    settings.STRIPE_LIVE_SECRET_KEY = live_key

    [error] = [m for m in _deploy_errors() if m.id == "billing.E002"]

    assert refused in error.msg


@pytest.mark.parametrize(
    ("live", "test_key", "live_key"),
    [(True, "", "sk_live_abc"), (True, "", "rk_live_abc"), (False, "sk_test_abc", "")],
    ids=["live", "live-restricted", "test"],
)
def test_deploy_check_accepts_the_key_of_the_mode(settings, live, test_key, live_key):
    settings.STRIPE_SANDBOX = False
    settings.STRIPE_LIVE_MODE = live
    settings.STRIPE_TEST_SECRET_KEY = test_key
    settings.STRIPE_LIVE_SECRET_KEY = live_key

    assert "billing.E002" not in [m.id for m in _deploy_errors()]


def test_deploy_check_leaves_the_key_to_the_sandbox_check(settings):
    settings.STRIPE_SANDBOX = True
    settings.STRIPE_LIVE_MODE = False
    settings.STRIPE_TEST_SECRET_KEY = ""

    ids = [m.id for m in _deploy_errors()]

    assert "billing.E001" in ids
    assert "billing.E002" not in ids


@pytest.mark.django_db
def test_deploy_check_on_the_database_refuses_a_missing_webhook_secret(settings):
    settings.STRIPE_LIVE_MODE = False

    assert "billing.E003" in _ids(databases=["default"])
    # Without --database, as Django's own database checks, it reads nothing.
    assert "billing.E003" not in _ids()


@pytest.mark.django_db
def test_deploy_check_on_the_database_wants_an_enabled_endpoint_of_the_mode(settings):
    settings.STRIPE_LIVE_MODE = False
    endpoint = WebhookEndpoint.objects.create(
        id="we_checks",
        livemode=False,
        secret="whsec_abc",
        url="https://x/",
        status="enabled",
        enabled_events=["*"],
    )
    assert "billing.E003" not in _ids(databases=["default"])

    endpoint.status = "disabled"
    endpoint.save()
    assert "billing.E003" in _ids(databases=["default"])

    endpoint.status, endpoint.secret = "enabled", ""
    endpoint.save()
    assert "billing.E003" in _ids(databases=["default"])

    endpoint.secret = "whsec_abc"
    endpoint.save()
    settings.STRIPE_LIVE_MODE = True  # a test-mode endpoint does not serve live mode
    assert "billing.E003" in _ids(databases=["default"])
