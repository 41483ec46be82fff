from __future__ import annotations

import pytest
from django.core import checks


def _deploy_error_ids() -> list[str]:
    return [
        m.id
        for m in checks.run_checks(include_deployment_checks=True, tags=[checks.Tags.security])
        if m.level >= checks.ERROR
    ]


def test_deploy_check_refuses_staff_without_two_factor_with_debug_off(settings):
    settings.DEBUG = False
    settings.STAFF_2FA_REQUIRED = False

    assert "smartflow.E001" in _deploy_error_ids()


def test_deploy_check_refuses_a_site_that_has_no_two_factor_setting(settings):
    # Read with getattr: a site that has no staff two-factor at all is refused too.
    settings.DEBUG = False
    del settings.STAFF_2FA_REQUIRED

    assert "smartflow.E001" in _deploy_error_ids()


@pytest.mark.parametrize(("debug", "required"), [(False, True), (True, False)])
def test_deploy_check_accepts_two_factor_or_debug(settings, debug, required):
    settings.DEBUG = debug
    settings.STAFF_2FA_REQUIRED = required

    assert "smartflow.E001" not in _deploy_error_ids()
