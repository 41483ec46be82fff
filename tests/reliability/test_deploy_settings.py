"""Production-like settings, loaded in a fresh interpreter as gunicorn would load them.

tests/smartflow/test_settings.py covers start-up (the secret key); the HTTP path of a
forged `X-Djstripe-Webhook-Secret` header with DEBUG off is in
tests/billing/test_webhook_signature.py. Here: Django's deployment checks pass with the
settings docs/deploy.md documents (deploy/env.example) and with the variables
docs/configuration.md says production needs, and fail with an error when a secret, email
or staff two-factor is missing; and in a process configured that way the
header cannot validate a forged event, while with DEBUG on dj-stripe itself would accept
it: so the webhook guard refuses the header unless STRIPE_WEBHOOK_DEBUG_HEADER is on
(tests/billing/test_webhook_signature.py, DEBUG on and off).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings

from tests.deploy_env import documented_env

PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "prod-like-" + "k3y-9f8e7d6c5b4a" * 4,
    "ALLOWED_HOSTS": "app.smartflowsystems.com",
    "CSRF_TRUSTED_ORIGINS": "https://app.smartflowsystems.com",
    "SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO,https",
    # Test mode: these tests also turn the sandbox on, which refuses a live key.
    "STRIPE_TEST_SECRET_KEY": "sk_test_" + "prodlike" * 3,
    "ADMINS": "Ops <ops@smartflowsystems.com>",
}


def _run(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    # Only what production has: nothing of the test run's environment leaks in.
    base = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    base["ENV_FILE"] = "/dev/null"  # never a developer's .env
    return subprocess.run(
        [sys.executable, *args],
        cwd=settings.BASE_DIR,
        env={**base, **PRODUCTION, **env, "DJANGO_SETTINGS_MODULE": "smartflow.settings"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_deploy_checks_pass_with_production_settings():
    result = _run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"])

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def _documented(**changed: str) -> dict[str, str]:
    # Every PRODUCTION variable replaced; no database to read (a check that would read one
    # skips a database without tables).
    return {**dict.fromkeys(PRODUCTION, ""), **documented_env(DATABASE_URL="sqlite://", **changed)}


def test_deploy_checks_pass_with_the_documented_settings():
    result = _run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], **_documented())

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize(
    ("missing", "error"),
    [
        ({"SECRET_KEY": ""}, "SECRET_KEY is missing or weak"),
        ({"SECRET_KEY": "django-insecure-" + "x1y2z3" * 10}, "SECRET_KEY is missing or weak"),
        ({"STRIPE_LIVE_SECRET_KEY": ""}, "billing.E002"),
        ({"STRIPE_LIVE_SECRET_KEY": "sk_test_" + "t" * 24}, "billing.E002"),
        (
            {"ANYMAIL_ESP": "", "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend"},
            "onboarding.E001",
        ),
        (
            {"ANYMAIL_ESP": "", "EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend"},
            "onboarding.E001",
        ),
        ({"STAFF_2FA_REQUIRED": "false"}, "backoffice.E001"),
    ],
    ids=[
        "no-secret-key",
        "insecure-secret-key",
        "no-stripe-key",
        "test-key-in-live-mode",
        "locmem-email",
        "console-email",
        "no-staff-2fa",
    ],
)
def test_deploy_checks_fail_with_an_error_when_a_setting_is_missing(missing, error):
    # Errors, not warnings: the default --fail-level (ERROR) fails.
    result = _run(["manage.py", "check", "--deploy"], **_documented(**missing))

    assert result.returncode != 0
    assert error in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("weakened", "warning"),
    [({"SECURE_SSL_REDIRECT": "false"}, "security.W008"), ({"DEBUG": "true"}, "security.W018")],
    ids=["no-https-redirect", "debug-on"],
)
def test_deploy_checks_fail_when_a_protection_is_off(weakened, warning):
    result = _run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], **weakened)

    assert result.returncode != 0
    assert warning in result.stderr + result.stdout


def test_deploy_checks_warn_when_nobody_gets_the_errors():
    result = _run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], ADMINS="")

    assert result.returncode != 0
    assert "onboarding.W001" in result.stderr + result.stdout


def test_deploy_checks_fail_with_the_sandbox_on():
    # DEBUG off and STRIPE_SANDBOX=1: any plan for test card 4242.
    result = _run(["manage.py", "check", "--deploy"], STRIPE_SANDBOX="1")

    assert result.returncode != 0
    assert "billing.E001" in result.stderr + result.stdout
    assert "STRIPE_SANDBOX is on" in result.stderr + result.stdout


def test_deploy_checks_fail_with_the_console_email_backend_and_debug_off():
    # Password-reset links printed to the log: anyone who reads the logs takes accounts.
    console = {"EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend"}

    refused = _run(["manage.py", "check", "--deploy"], **console)
    on_purpose = _run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        **console,
        EMAIL_BACKEND_ALLOW_CONSOLE="true",
    )

    assert refused.returncode != 0
    assert "onboarding.E001" in refused.stderr
    assert "ANYMAIL_ESP" in refused.stderr
    assert on_purpose.returncode == 0, on_purpose.stdout + on_purpose.stderr


def test_email_leaves_the_machine_by_default_with_debug_off():
    # Unset, EMAIL_BACKEND is SMTP with DEBUG off (console only for local use).
    code = "import django; django.setup(); from django.conf import settings as s; "
    code += "print(s.EMAIL_BACKEND)"

    result = _run(["-c", code])

    assert result.stdout.strip().splitlines()[-1] == "django.core.mail.backends.smtp.EmailBackend"


# [DEBUG, SECURE_SSL_REDIRECT, SESSION_COOKIE_SECURE, CSRF_COOKIE_SECURE,
#  SECURE_HSTS_SECONDS, SECURE_HSTS_INCLUDE_SUBDOMAINS] of a secure production start.
SECURE = [False, True, True, True, 31536000, True]
_SECURITY = (
    "import json, django; django.setup(); from django.conf import settings as s; "
    "print(json.dumps([s.DEBUG, s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SECURE, "
    "s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_INCLUDE_SUBDOMAINS]))"
)


def test_a_copied_env_example_with_a_secret_key_is_a_secure_production_configuration(tmp_path):
    # `cp .env.example .env`, SECRET_KEY, a Stripe key and ADMINS filled in, nothing else:
    # the app starts with DEBUG off and every HTTPS protection on, and the deployment checks
    # pass.
    example = (settings.BASE_DIR / ".env.example").read_text()
    key = "copied-" + "s3cr3t-9f8e7d6c5b4a" * 4
    assert "\nSECRET_KEY=\n" in example
    assert "\nADMINS=\n" in example
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        example.replace("\nSECRET_KEY=\n", f"\nSECRET_KEY={key}\n")
        .replace("\n#STRIPE_TEST_SECRET_KEY=\n", "\nSTRIPE_TEST_SECRET_KEY=sk_test_copied123\n")
        .replace("\nADMINS=\n", "\nADMINS=Ops <ops@smartflowsystems.com>\n")
    )
    # Only the file: none of PRODUCTION's variables.
    base = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    env = {**base, "ENV_FILE": str(dotenv), "DJANGO_SETTINGS_MODULE": "smartflow.settings"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *args],
            cwd=settings.BASE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    started = run("-c", _SECURITY)
    checked = run("manage.py", "check", "--deploy", "--fail-level", "WARNING")

    assert started.returncode == 0, started.stderr
    assert json.loads(started.stdout.strip().splitlines()[-1]) == SECURE
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_empty_values_mean_the_defaults():
    # `SECURE_SSL_REDIRECT=` (as a copied .env.example had it) used to read as "off", and
    # `SECURE_HSTS_SECONDS=` crashed start-up.
    empty = dict.fromkeys(
        (
            "SECURE_SSL_REDIRECT",
            "SESSION_COOKIE_SECURE",
            "CSRF_COOKIE_SECURE",
            "SECURE_HSTS_SECONDS",
            "SECURE_HSTS_INCLUDE_SUBDOMAINS",
        ),
        "",
    )

    result = _run(["-c", _SECURITY], **empty)

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == SECURE


# Validates a forged event the way dj-stripe's webhook view does, without a database:
# signed with the forger's secret, which the header offers in place of the endpoint's.
_FORGE = """
import json
import django
django.setup()
from django.conf import settings
from djstripe.models import WebhookEndpoint, WebhookEventTrigger
from tests.billing.stripe_fakes import signature

endpoint = WebhookEndpoint(secret="whsec_the_real_one", djstripe_tolerance=300)
body = json.dumps({"id": "evt_forged", "livemode": False, "type": "charge.refunded",
                   "data": {"object": {"id": "ch_x", "object": "charge"}}})
trigger = WebhookEventTrigger(
    headers={"Stripe-Signature": signature(body.encode(), "whsec_forger"),
             "X-Djstripe-Webhook-Secret": "whsec_forger"},
    body=body,
    webhook_endpoint=endpoint,
)
print(json.dumps({"debug": settings.DEBUG,
                  "valid": trigger.validate(api_key="", secret=endpoint.secret)}))
"""


def _forged_event_accepted(**env: str) -> dict[str, bool]:
    result = _run(["-c", _FORGE], **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_with_production_settings_the_debug_header_cannot_forge_an_event():
    assert _forged_event_accepted() == {"debug": False, "valid": False}


def test_with_debug_on_the_header_would_forge_one():
    # Why DEBUG must stay off anywhere reachable (docs/operations.md, Connecting Stripe),
    # and why the webhook guard refuses the header before dj-stripe sees it.
    assert _forged_event_accepted(DEBUG="true") == {"debug": True, "valid": True}
