from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRINT = (
    "import json; from django.conf import settings as s; "
    "print(json.dumps({'backend': s.EMAIL_BACKEND, 'anymail': s.ANYMAIL}))"
)


def _settings(**env: str) -> dict[str, object]:
    """The email settings a fresh process gets from this environment."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ANYMAIL_", "EMAIL_"))}
    result = subprocess.run(
        [sys.executable, "-c", PRINT],
        cwd=ROOT,
        env={**clean, **env, "DEBUG": "true", "DJANGO_SETTINGS_MODULE": "smartflow.settings"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_console_backend_by_default():
    assert _settings() == {
        "backend": "django.core.mail.backends.console.EmailBackend",
        "anymail": {"WEBHOOK_SECRET": []},
    }


def test_esp_and_api_key_configure_that_esp_under_its_own_credential_name():
    sendgrid = _settings(ANYMAIL_ESP="sendgrid", ANYMAIL_API_KEY="SG.key")
    postmark = _settings(
        ANYMAIL_ESP="Postmark",
        ANYMAIL_API_KEY="pm-token",
        ANYMAIL_WEBHOOK_SECRET="hook:old,hook:new",
        EMAIL_BACKEND="django.core.mail.backends.console.EmailBackend",
    )

    assert sendgrid["backend"] == "anymail.backends.sendgrid.EmailBackend"
    assert sendgrid["anymail"]["SENDGRID_API_KEY"] == "SG.key"
    assert postmark["backend"] == "anymail.backends.postmark.EmailBackend"
    assert postmark["anymail"] == {
        "POSTMARK_SERVER_TOKEN": "pm-token",
        "WEBHOOK_SECRET": ["hook:old", "hook:new"],
    }


def test_any_anymail_setting_can_come_from_the_environment():
    got = _settings(
        ANYMAIL_ESP="mailgun",
        ANYMAIL_MAILGUN_API_KEY="key-1",
        ANYMAIL_MAILGUN_SENDER_DOMAIN="mg.smartflowsystems.com",
        ANYMAIL_MAILGUN_API_URL="https://api.eu.mailgun.net/v3",
        ANYMAIL_AMAZON_SES_CLIENT_PARAMS='{"region_name": "eu-west-2"}',
        ANYMAIL_IGNORE_UNSUPPORTED_FEATURES="true",
        ANYMAIL_REQUESTS_TIMEOUT="10",
    )

    assert got["anymail"] == {
        "MAILGUN_API_KEY": "key-1",
        "MAILGUN_SENDER_DOMAIN": "mg.smartflowsystems.com",
        "MAILGUN_API_URL": "https://api.eu.mailgun.net/v3",
        "AMAZON_SES_CLIENT_PARAMS": {"region_name": "eu-west-2"},
        "IGNORE_UNSUPPORTED_FEATURES": True,
        "REQUESTS_TIMEOUT": 10.0,
        "WEBHOOK_SECRET": [],
    }


def test_smtp_through_djangos_backend():
    got = _settings(EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend")

    assert got["backend"] == "django.core.mail.backends.smtp.EmailBackend"


def test_unknown_esp_fails_at_startup_with_a_clear_message():
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ANYMAIL_")}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env={
            **clean,
            "DEBUG": "true",
            "ANYMAIL_ESP": "sendgird",
            "DJANGO_SETTINGS_MODULE": "smartflow.settings",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert "ANYMAIL_ESP='sendgird' is not an anymail backend" in result.stderr


def test_every_provider_the_docs_list_is_a_backend_of_the_pinned_anymail():
    # docs/configuration.md's provider table names each ESP by its ANYMAIL_ESP value; each
    # must be a backend module of the installed django-anymail, so the table cannot
    # promise one that a release has dropped.
    import importlib.util
    import re

    page = (ROOT / "docs" / "configuration.md").read_text()
    table = page[page.index("| provider | `ANYMAIL_ESP` |") :].split("\n\n", 1)[0]
    rows = [line.split("|")[1:-1] for line in table.splitlines()[2:]]
    named = {m.group(1) for _, esp, _ in rows if (m := re.fullmatch(r" `([a-z_]+)` ", esp))}

    assert len(named) == len(rows) - 1  # every row but SMTP names its module
    assert {"sendgrid", "brevo", "mailgun", "postmark", "amazon_ses", "mailtrap"} <= named
    missing = [n for n in sorted(named) if not importlib.util.find_spec(f"anymail.backends.{n}")]
    assert missing == [], f"the docs list providers anymail does not have: {missing}"


def _support_email(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "SUPPORT_EMAIL"}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from django.conf import settings as s; print(s.SUPPORT_EMAIL)",
        ],
        cwd=ROOT,
        env={**clean, **env, "DEBUG": "true", "DJANGO_SETTINGS_MODULE": "smartflow.settings"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip().splitlines()[-1]


def test_replies_go_to_support_email_or_to_the_support_address_not_no_reply():
    assert _support_email(SUPPORT_EMAIL="help@example.com") == "help@example.com"
    assert _support_email() == "support@smartflowsystems.com"
    assert _support_email(SUPPORT_EMAIL="") == "support@smartflowsystems.com"
