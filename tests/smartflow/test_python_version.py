"""`make` stops at once, in one line, on a Python outside pyproject.toml's requires-python."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from smartflow.python_version import PYPROJECT, refusal

ROOT = Path(__file__).resolve().parents[2]


def test_an_unsupported_python_gets_one_line_naming_the_versions_that_work():
    message = refusal((3, 10), PYPROJECT.read_text())

    assert message is not None
    assert "\n" not in message
    assert "SmartFlow needs Python 3.11, 3.12 or 3.13" in message
    assert "Python 3.10" in message


def test_the_supported_pythons_pass():
    text = PYPROJECT.read_text()

    assert [refusal((3, minor), text) for minor in (11, 12, 13)] == [None, None, None]
    assert refusal((3, 14), text) is not None


def test_the_makefile_checks_the_python_before_anything_else():
    # `make run PYTHON=<a Python 3.10>` must stop before creating the venv: the check is a
    # prerequisite of the venv and of run and test.
    makefile = (ROOT / "Makefile").read_text()
    assert "python-version:\n\t@$(PYTHON) smartflow/python_version.py" in makefile
    assert "$(PY): | python-version" in makefile
    result = subprocess.run(
        [sys.executable, "smartflow/python_version.py"], cwd=ROOT, capture_output=True
    )
    assert result.returncode == 0
