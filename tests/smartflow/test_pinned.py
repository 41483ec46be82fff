"""Every package installed in the virtualenv is pinned, at its installed version and with
its hashes, in the requirements files `make lock` generates: a fresh clone installs
exactly what CI tested, and `pip install --require-hashes` accepts the files."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
LOCKED = ("requirements.txt", "requirements-dev.txt", "requirements-lock.txt")


def _name(raw: str) -> str:
    # PEP 503: "typing_extensions", "Typing.Extensions" and "typing-extensions" are one.
    return re.sub(r"[-_.]+", "-", raw).lower()


def _entries(path: Path) -> list[tuple[Requirement, list[str]]]:
    """Each requirement of a generated file with its --hash options."""
    text = path.read_text().replace("\\\n", " ")
    entries = []
    for line in text.splitlines():
        line = line.split("#")[0].strip()
        if not line or line.startswith("-"):  # -c requirements.txt
            continue
        spec, *options = line.split(" --")
        entries.append((Requirement(spec.strip()), [o for o in options if o.startswith("hash=")]))
    return entries


def _pins(path: Path) -> dict[str, str]:
    """name -> version of the requirements that apply to this Python and platform."""
    pins: dict[str, str] = {}
    for requirement, _ in _entries(path):
        if requirement.marker is None or requirement.marker.evaluate():
            (specifier,) = requirement.specifier
            pins[_name(requirement.name)] = specifier.version
    return pins


@pytest.mark.parametrize("filename", LOCKED)
def test_every_requirement_is_pinned_exactly_with_hashes(filename):
    entries = _entries(ROOT / filename)

    assert entries
    for requirement, hashes in entries:
        specifiers = list(requirement.specifier)
        assert len(specifiers) == 1, f"{requirement}"
        assert specifiers[0].operator == "==", f"{requirement}"
        assert hashes, f"{filename}: {requirement} has no --hash (run `make lock`)"


@pytest.mark.parametrize(
    ("source", "locked"),
    [("requirements.in", "requirements.txt"), ("requirements-dev.in", "requirements-dev.txt")],
)
def test_every_top_level_pin_is_locked_at_its_version(source, locked):
    # An edited .in file without `make lock` would install something else than it says.
    wanted = {_name(r.name): next(iter(r.specifier)).version for r, _ in _entries(ROOT / source)}

    assert wanted.items() <= _pins(ROOT / locked).items()


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
