"""`make run`'s .env (smartflow/devenv.py): written once, then kept in step with HOST and
PORT, so that commands in a second terminal see what the server sees."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from smartflow.devenv import HEADER, dev_env_write

ROOT = Path(__file__).resolve().parents[2]


def _values(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def _settings_from(path: Path) -> dict[str, object]:
    # A fresh process with a newcomer's environment and only this file: no DEBUG, no key.
    base = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    code = (
        "import json; from django.conf import settings as s; "
        "print(json.dumps([s.DEBUG, s.SITE_URL, s.STRIPE_SANDBOX, s.STRIPE_SANDBOX_SEED]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**base, "ENV_FILE": str(path), "DJANGO_SETTINGS_MODULE": "smartflow.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_first_run_writes_debug_a_key_the_site_url_and_the_seed(tmp_path):
    path = tmp_path / ".env"

    dev_env_write(path=path, host="127.0.0.1", port=8301)

    values = _values(path)
    assert path.read_text().startswith(HEADER)
    assert values["DEBUG"] == "true"
    assert len(values["SECRET_KEY"]) >= 50
    assert values["SITE_URL"] == "http://127.0.0.1:8301"
    assert _settings_from(path) == [
        True,
        "http://127.0.0.1:8301",
        True,
        int(values["STRIPE_SANDBOX_SEED"]),
    ]


def test_a_later_run_keeps_the_key_and_seed_and_follows_the_port(tmp_path):
    path = tmp_path / ".env"
    dev_env_write(path=path, host="127.0.0.1", port=8000)
    first = _values(path)

    dev_env_write(path=path, host="localhost", port=8301)

    second = _values(path)
    assert second["SITE_URL"] == "http://localhost:8301"
    assert second["SECRET_KEY"] == first["SECRET_KEY"]
    assert second["STRIPE_SANDBOX_SEED"] == first["STRIPE_SANDBOX_SEED"]
    assert path.read_text().count("SITE_URL=") == 1


def test_a_developers_own_env_file_is_left_as_it_is(tmp_path):
    path = tmp_path / ".env"
    path.write_text("DEBUG=true\nSITE_URL=https://dev.example.com\n")

    said = dev_env_write(path=path, host="127.0.0.1", port=8301)

    assert path.read_text() == "DEBUG=true\nSITE_URL=https://dev.example.com\n"
    assert "your own" in said
