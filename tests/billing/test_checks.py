from __future__ import annotations

from django.core import checks


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
