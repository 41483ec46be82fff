from __future__ import annotations

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


def test_startup_with_a_worker_stale_time_within_two_heartbeats_fails():
    # A live worker would look dead between two beats and lose its tasks to another.
    result = _start(DEBUG="true", WORKER_HEARTBEAT_SECONDS="10", WORKER_STALE_SECONDS="15")

    assert result.returncode != 0
    assert "WORKER_STALE_SECONDS must be at least twice WORKER_HEARTBEAT_SECONDS" in result.stderr
    assert (
        _start(DEBUG="true", WORKER_HEARTBEAT_SECONDS="1", WORKER_STALE_SECONDS="2").returncode == 0
    )
