"""smartflow/wsgi.py: the web process freezes its start-up heap (heap_freeze)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Loads the app as gunicorn does, in a fresh interpreter (a freeze here would last the
# whole test session), and reports what the collector left out and what was imported.
PROBE = (
    "import gc, sys; import smartflow.wsgi; "
    "print(gc.get_freeze_count(), 'billing.urls' in sys.modules)"
)


def _probe(**env: str) -> tuple[int, bool]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "smartflow.settings", "DEBUG": "true", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    frozen, urls_loaded = result.stdout.splitlines()[-1].split()  # after the log lines
    return int(frozen), urls_loaded == "True"


def test_the_web_process_freezes_its_start_up_heap_with_the_urlconf_loaded() -> None:
    frozen, urls_loaded = _probe(SPEED_PLAIN="")

    # Django, dj-stripe, stripe-python and the views: far more than a bare interpreter.
    assert frozen > 50_000
    assert urls_loaded


def test_speed_plain_leaves_the_heap_to_the_collector() -> None:
    frozen, urls_loaded = _probe(SPEED_PLAIN="web_gc_freeze")

    assert frozen == 0
    assert not urls_loaded
