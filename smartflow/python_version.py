"""Stop at once, in one line, on a Python the project does not support.

    python3 smartflow/python_version.py    (the Makefile runs it before anything else)

The supported versions are pyproject.toml's `requires-python`, read here with a regular
expression: this file must run on any Python 3, including the unsupported ones it turns
away (so no tomllib, no Django, nothing newer than Python 3.6 syntax: the annotations are
strings).
"""

import re
import sys
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def _minor(pattern: str, spec: str) -> int:
    found = re.search(pattern, spec)
    if found is None:
        raise SystemExit(f"pyproject.toml: cannot read {spec!r} as >=3.X,<3.Y")
    return int(found.group(1))


def supported_range(pyproject_text: str) -> "tuple[tuple[int, int], tuple[int, int]]":
    """(lowest, first unsupported) versions from `requires-python = ">=3.11,<3.14"`."""
    spec = re.search(r'^requires-python\s*=\s*"([^"]+)"', pyproject_text, re.M)
    if spec is None:
        raise SystemExit("pyproject.toml declares no requires-python")
    return (3, _minor(r">=\s*3\.(\d+)", spec.group(1))), (3, _minor(r"<\s*3\.(\d+)", spec.group(1)))


def refusal(version: "tuple[int, ...]", pyproject_text: str) -> "str | None":
    """None when `version` (major, minor) is supported, else the one-line message."""
    (low, high) = supported_range(pyproject_text)
    if low <= tuple(version[:2]) < high:
        return None
    minors = [f"3.{minor}" for minor in range(low[1], high[1])]
    names = ", ".join(minors[:-1]) + " or " + minors[-1] if len(minors) > 1 else minors[0]
    return (
        f"SmartFlow needs Python {names} (pyproject.toml's requires-python); "
        f"{sys.executable} is Python {version[0]}.{version[1]}. "
        "Run again with PYTHON=/path/to/python3.11, e.g. `make run PYTHON=python3.11`."
    )


if __name__ == "__main__":
    message = refusal(tuple(sys.version_info[:2]), PYPROJECT.read_text())
    if message:
        sys.stderr.write(message + "\n")
        sys.exit(1)
