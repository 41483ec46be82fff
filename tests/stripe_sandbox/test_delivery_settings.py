"""STRIPE_SANDBOX_DELIVERY and STRIPE_SANDBOX_SEED, read at start-up (smartflow/settings.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHOW = (
    "import django; django.setup(); from django.conf import settings; "
    "print('delivery', settings.STRIPE_SANDBOX_DELIVERY, settings.STRIPE_SANDBOX_SEED)"
)


def _start(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in {"STRIPE_SANDBOX_DELIVERY", "STRIPE_SANDBOX_SEED", "DEBUG"}
    }
    return subprocess.run(
        [sys.executable, "-c", SHOW],
        cwd=ROOT,
        env={**clean, "DEBUG": "true", **env, "DJANGO_SETTINGS_MODULE": "smartflow.settings"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_by_default_delivery_is_stripes_with_a_random_seed_that_is_logged():
    result = _start()

    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("delivery "))
    _, mode, seed = line.split()
    assert mode == "stripe"
    assert f"webhook delivery stripe, seed {seed} (STRIPE_SANDBOX_SEED={seed}" in result.stdout


def test_a_given_seed_and_ordered_mode_are_used():
    result = _start(STRIPE_SANDBOX_DELIVERY="ordered", STRIPE_SANDBOX_SEED="77")

    assert "delivery ordered 77" in result.stdout
    assert "webhook delivery ordered, seed 77" in result.stdout


def test_unknown_mode_or_seed_fails_clearly():
    mode = _start(STRIPE_SANDBOX_DELIVERY="random")
    seed = _start(STRIPE_SANDBOX_SEED="abc")

    assert "STRIPE_SANDBOX_DELIVERY must be stripe or ordered" in mode.stderr
    assert "STRIPE_SANDBOX_SEED must be a whole number" in seed.stderr
