"""Every package installed in the virtualenv is pinned, at its installed version, in the
requirements files: a fresh clone installs exactly what CI tested."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _name(raw: str) -> str:
    # PEP 503: "typing_extensions", "Typing.Extensions" and "typing-extensions" are one.
    return re.sub(r"[-_.]+", "-", raw).lower()


def _pins(path: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line or line.startswith("-r "):
            continue
        name, sep, version = line.partition("==")
        assert sep, f"{path.name}: {line!r} is not pinned exactly (name==version)"
        pins[_name(name)] = version
    return pins


@pytest.mark.skipif(sys.prefix == sys.base_prefix, reason="not running in the project's venv")
def test_every_installed_package_is_pinned_at_its_version():
    frozen = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    installed = {
        _name(name): version
        for name, _, version in (line.partition("==") for line in frozen.splitlines())
        if version
    }
    pinned = _pins(ROOT / "requirements.txt") | _pins(ROOT / "requirements-dev.txt")

    assert installed == pinned
