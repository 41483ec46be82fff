"""Stop at once, in one line, on a Python the project does not support.

    python3 smartflow/python_version.py    (the Makefile runs it before anything else)

The supported versions are pyproject.toml's `requires-python`, read here with a regular
expression: this file must run on any Python 3, including the unsupported ones it turns
away (so no tomllib, no Django, nothing newer than Python 3.6 syntax).
"""

import re
import sys
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def supported_range(pyproject_text):
    """(lowest, first unsupported) minor versions from `requires-python = ">=3.11,<3.14"`."""
    spec = re.search(r'^requires-python\s*=\s*"([^"]+)"', pyproject_text, re.M).group(1)
    low = re.search(r">=\s*3\.(\d+)", spec)
    high = re.search(r"<\s*3\.(\d+)", spec)
    return (3, int(low.group(1))), (3, int(high.group(1)))


def refusal(version, pyproject_text):
    """None when `version` (major, minor) is supported, else the one-line message."""
    (low, high) = supported_range(pyproject_text)
    if low <= tuple(version[:2]) < high:
        return None
    names = [f"3.{minor}" for minor in range(low[1], high[1])]
    names = ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]
    return (
        f"SmartFlow needs Python {names} (pyproject.toml's requires-python); "
        f"{sys.executable} is Python {version[0]}.{version[1]}. "
        "Run again with PYTHON=/path/to/python3.11, e.g. `make run PYTHON=python3.11`."
    )


if __name__ == "__main__":
    message = refusal(sys.version_info, PYPROJECT.read_text())
    if message:
        sys.stderr.write(message + "\n")
        sys.exit(1)
