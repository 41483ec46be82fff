from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import stripe
from django.apps import apps
from django.core.exceptions import ImproperlyConfigured

from billing.stripe_pace import PacedHTTPClient
from devtools.stripe_sandbox.client import SandboxHTTPClient, sandbox_install

ROOT = Path(__file__).resolve().parents[2]


def test_sandbox_is_installed_as_stripes_http_client(settings, monkeypatch):
    monkeypatch.setattr(stripe, "default_http_client", None)
    monkeypatch.setattr(stripe, "max_network_retries", 2)

    apps.get_app_config("sandbox").ready()

    # Behind the deployment's pace, as the real client is (billing/stripe_pace.py).
    assert isinstance(stripe.default_http_client, PacedHTTPClient)
    assert isinstance(stripe.default_http_client.inner, SandboxHTTPClient)
    assert stripe.max_network_retries == 0


def test_sandbox_off_installs_nothing(settings, monkeypatch):
    settings.STRIPE_SANDBOX = False
    monkeypatch.setattr(stripe, "default_http_client", None)

    apps.get_app_config("sandbox").ready()

    assert stripe.default_http_client is None


@pytest.mark.parametrize(
    "live",
    [{"STRIPE_LIVE_MODE": True}, {"STRIPE_LIVE_SECRET_KEY": "sk_live_" + "x" * 30}],
)
def test_sandbox_refuses_live_keys(settings, monkeypatch, live):
    monkeypatch.setattr(stripe, "default_http_client", None)
    for name, value in live.items():
        setattr(settings, name, value)

    with pytest.raises(ImproperlyConfigured):
        sandbox_install()

    assert stripe.default_http_client is None


def test_sandbox_off_mounts_no_pages_and_installs_no_client():
    code = (
        "import django, stripe; django.setup()\n"
        "from django.urls import resolve, Resolver404\n"
        "try:\n    resolve('/sandbox/checkout/cs_test_x/'); mounted = 'mounted'\n"
        "except Resolver404:\n    mounted = 'unmounted'\n"
        "print('RESULT', mounted, type(stripe.default_http_client.inner).__name__)"
    )
    env = {**os.environ, "STRIPE_SANDBOX": "false", "DJANGO_SETTINGS_MODULE": "smartflow.settings"}

    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stderr
    result_line = next(line for line in result.stdout.splitlines() if line.startswith("RESULT"))
    # stripe-python's own client, paced (billing/stripe_pace.py).
    assert result_line.split() == ["RESULT", "unmounted", "RequestsClient"]


def test_billing_never_imports_the_sandbox():
    # Billing talks to "Stripe" through stripe-python only; the sandbox is one thing that
    # can answer it, installed or not, so billing must work without it.
    import ast

    offenders = []
    for path in sorted((ROOT / "billing").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            if any(n == "devtools" or n.startswith("devtools.") for n in names):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def test_the_sandbox_is_installed_only_when_on():
    code = (
        "import django; django.setup()\n"
        "from django.apps import apps\n"
        "print('RESULT', apps.is_installed('devtools.stripe_sandbox'))"
    )
    found = {}
    for value in ("true", "false"):
        env = {
            **os.environ,
            "STRIPE_SANDBOX": value,
            "DJANGO_SETTINGS_MODULE": "smartflow.settings",
        }
        result = subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        found[value] = next(line for line in result.stdout.splitlines() if "RESULT" in line)
    assert found == {"true": "RESULT True", "false": "RESULT False"}
