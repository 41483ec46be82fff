"""The repository stands alone: no tracked file reaches a path outside it.

A user's clone has nothing beside it, so a test, a setting or a comment that points at
a sibling folder works only on the machine it was written on. Three ways out are
caught: a `../` that climbs above the root from the file's own folder, a
`Path(__file__).parents[N]` (or `.parent` chain) above the root, and any path through
the reference folder that sits beside the checkout on developers' machines.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parents[2]

# Built from pieces so that this file does not match its own patterns.
_OUTSIDE_FOLDER = re.compile(r"(?<![\w.-])" + "shar" + r"ed/")
_CLIMB = re.compile(r"(?:\.\./)+")
_PARENTS = re.compile(r"__file__\)(?:\.resolve\(\))?\.parents\[(\d+)\]")
_PARENT_CHAIN = re.compile(r"__file__\)(?:\.resolve\(\))?((?:\.parent\b)+)")
# Folders that are never tracked: the virtualenv, collected static files, artifacts.
_UNTRACKED = {".git", ".venv", "staticfiles", "artifacts", "__pycache__", "node_modules"}


def _tracked_files() -> list[PurePosixPath]:
    if (ROOT / ".git").exists():
        out = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True
        ).stdout
        return [PurePosixPath(p) for p in out.decode().split("\0") if p]
    # A tarball without git: every file below the root except what git would ignore.
    files = []
    for folder, dirs, names in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in _UNTRACKED]
        rel = Path(folder).relative_to(ROOT)
        files += [PurePosixPath((rel / n).as_posix()) for n in names]
    return files


def outside_references(path: PurePosixPath, text: str) -> list[str]:
    """Each reference in `text` (the content of `path`, relative to the root) to a
    location outside the repository, as "line N: excerpt"."""
    depth = len(path.parts) - 1  # folders between the root and the file
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        reasons = []
        if _OUTSIDE_FOLDER.search(line):
            reasons.append("names the reference folder beside the repository")
        if any(len(m.group()) // 3 > depth for m in _CLIMB.finditer(line)):
            reasons.append("climbs above the repository root")
        for m in _PARENTS.finditer(line):
            if int(m.group(1)) > depth:
                reasons.append(f"parents[{m.group(1)}] is above the repository root")
        for m in _PARENT_CHAIN.finditer(line):
            if m.group(1).count(".parent") - 1 > depth:
                reasons.append("a .parent chain goes above the repository root")
        found += [f"line {number}: {reason}: {line.strip()[:120]}" for reason in reasons]
    return found


def test_no_tracked_file_refers_outside_the_repository() -> None:
    problems = []
    for path in _tracked_files():
        try:
            text = (ROOT / path).read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue  # binary, or deleted in the working tree
        problems += [f"{path}: {p}" for p in outside_references(path, text)]
    assert not problems, "Files refer to paths outside the repository:\n" + "\n".join(problems)


def test_the_detector_catches_each_way_out() -> None:
    # Proof that the test above can fail: each kind of reference, and its in-tree twin.
    # The samples are assembled at run time so that this file does not match itself.
    file = PurePosixPath("tests/billing/fakes.py")
    here = "Path(__file__).resolve()"
    up = ".." + "/"
    outside = [
        f"FIXTURES = {here}.parents[{3}] / 'x.json'",
        f"FIXTURES = {here}{'.parent' * 5} / 'x.json'",
        f'open("{up * 3}notes.md")',
        "see " + "shar" + "ed/NOTES.md",
    ]
    inside = [
        f"ROOT = {here}.parents[2]",
        f"HERE = {here}{'.parent' * 3}",
        f'open("{up * 2}README.md")',
        "a shared-cache database; prepared/ folder",
    ]
    assert all(outside_references(file, line) for line in outside)
    assert not any(outside_references(file, line) for line in inside)
