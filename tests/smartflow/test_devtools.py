"""The dev tools (devtools/) are mounted and imported only when their settings turn them
on: a production site (STRIPE_SANDBOX and BENCH_VIEWS off) answers none of their URLs and
never imports them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# One URL of each tool's, and the view module that answers it when mounted.
TOOL_URLS = {
    "/sandbox/checkout/cs_test_x/": "devtools.stripe_sandbox.views",
    "/bench/constant/": "devtools.bench.views",
}

_PROBE = """
import json, sys
import django
django.setup()
from django.conf import settings
from django.urls import Resolver404, resolve
import smartflow.wsgi  # what gunicorn loads
__import__(settings.ROOT_URLCONF)
answers = {}
for url in %r:
    try:
        answers[url] = resolve(url).func.__module__
    except Resolver404:
        answers[url] = None
loaded = sorted(m for m in sys.modules if m == "devtools" or m.startswith("devtools."))
print("RESULT " + json.dumps({"answers": answers, "devtools_loaded": bool(loaded)}))
"""


def _probe(**settings: str) -> dict[str, object]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "smartflow.settings",
        "DEBUG": "false",
        **settings,
    }
    result = subprocess.run(
        [sys.executable, "-c", _PROBE % (list(TOOL_URLS),)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def test_production_mounts_and_imports_no_dev_tool():
    found = _probe(STRIPE_SANDBOX="false", BENCH_VIEWS="false")

    assert found == {"answers": dict.fromkeys(TOOL_URLS), "devtools_loaded": False}


def test_each_tool_is_mounted_when_its_setting_is_on():
    found = _probe(STRIPE_SANDBOX="true", BENCH_VIEWS="true")

    assert found == {"answers": TOOL_URLS, "devtools_loaded": True}
