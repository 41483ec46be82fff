from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _start(**env: str) -> subprocess.CompletedProcess[str]:
    """Load the settings in a fresh interpreter, the way manage.py or gunicorn would."""
    clean = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG"}}
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "smartflow.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_startup_without_secret_key_and_debug_off_fails_clearly():
    result = _start(DEBUG="false")

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "SECRET_KEY is missing or weak" in result.stderr


def test_startup_with_a_weak_secret_key_fails():
    result = _start(DEBUG="false", SECRET_KEY="django-insecure-short")

    assert "SECRET_KEY is missing or weak" in result.stderr


def test_startup_with_debug_on_uses_the_dev_key():
    assert _start(DEBUG="true").returncode == 0


def test_startup_with_a_strong_key_succeeds():
    assert _start(DEBUG="false", SECRET_KEY="k" * 10 + "abcdefghij" * 5).returncode == 0


def _settings_value(expression: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Print `expression` of freshly loaded settings (without setting Django up)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STRIPE_PRICE_")}
    clean.update(env)
    code = f"from django.conf import settings; print(repr({expression}))"
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "smartflow.settings", "DEBUG": "true"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_every_plan_and_interval_has_its_stripe_price_variable():
    from billing.plans import Interval, Plan

    names = {
        f"STRIPE_PRICE_{p.upper()}_{i.upper()}": (p, i)
        for p in Plan.values
        for i in Interval.values
    }
    # .env.example lists exactly these names (each after its comment), and they work,
    # e.g. STRIPE_PRICE_FLOWKIT_ONEOFF=price_...
    lines = (ROOT / ".env.example").read_text().splitlines()
    documented = {
        line.removeprefix("#").split("=")[0]: lines[n - 1]
        for n, line in enumerate(lines)
        if line.removeprefix("#").startswith("STRIPE_PRICE_")
    }
    assert documented.keys() == names.keys()
    assert all(above.startswith("# ") for above in documented.values())
    env = {name: f"price_{n}" for n, name in enumerate(names)}

    result = _settings_value("settings.STRIPE_PRICE_IDS", **env)

    assert result.returncode == 0, result.stderr
    configured = ast.literal_eval(result.stdout.strip().splitlines()[-1])
    assert configured == {names[name]: value for name, value in env.items()}


def test_loading_the_settings_imports_no_model_or_app():
    # The settings import billing.plans for the plan names: it must stay a leaf that
    # needs neither the app registry nor any setting while being imported.
    result = _settings_value(
        "(settings.STRIPE_PRICE_IDS, __import__('django.apps').apps.apps.ready, "
        "[m for m in __import__('sys').modules if m.endswith('.models') and "
        "m.split('.')[0] in ('accounts', 'billing', 'onboarding', 'djstripe')])"
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "({}, False, [])"


def test_startup_with_a_worker_stale_time_within_two_heartbeats_fails():
    # A live worker would look dead between two beats and lose its tasks to another.
    result = _start(DEBUG="true", WORKER_HEARTBEAT_SECONDS="10", WORKER_STALE_SECONDS="15")

    assert result.returncode != 0
    assert "WORKER_STALE_SECONDS must be at least twice WORKER_HEARTBEAT_SECONDS" in result.stderr
    assert (
        _start(DEBUG="true", WORKER_HEARTBEAT_SECONDS="1", WORKER_STALE_SECONDS="2").returncode == 0
    )


def test_startup_with_task_rows_kept_less_than_the_webhook_retry_window_fails():
    # A failed webhook task is queued again for three days: its row must outlive that.
    result = _start(DEBUG="true", RETENTION_TASK_DAYS="2")

    assert result.returncode != 0
    assert "RETENTION_TASK_DAYS must be at least 3" in result.stderr
    assert _start(DEBUG="true", RETENTION_WEBHOOK_BODY_DAYS="0").returncode != 0
    assert _start(DEBUG="true", RETENTION_TASK_DAYS="3").returncode == 0
