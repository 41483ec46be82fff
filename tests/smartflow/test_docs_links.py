"""The README is a front door and its guides hold together: README.md stays under 200
lines, every relative link in README.md and docs/*.md reaches a file in the repository
(and, for a Markdown page, a heading of it when the link names one), and
docs/configuration.md names every variable `.env.example` lists.

A guide that moves, or a folder that is renamed, breaks a link somewhere; this is where
it shows, instead of in a newcomer's browser.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README_MAX_LINES = 200

_FENCE = re.compile(r"^```.*?^```", re.S | re.M)
_CODE = re.compile(r"`[^`\n]*`")
# [text](target) and ![alt](target); the target ends at the first space or ")".
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$", re.M)


def _pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _prose(text: str) -> str:
    """The text without fenced code blocks (links and headings there are not live)."""
    return _FENCE.sub("", text)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.replace("`", "").strip().lower()
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link's text only
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """The anchors of a Markdown page's headings, numbered as GitHub numbers repeats."""
    found: set[str] = set()
    counts: dict[str, int] = {}
    for match in _HEADING.finditer(_prose(text)):
        slug = _slug(match.group(2))
        n = counts.get(slug, 0)
        counts[slug] = n + 1
        found.add(slug if n == 0 else f"{slug}-{n}")
    found |= set(re.findall(r'<a id="([^"]+)"', text))
    return found


def broken_links(page: Path, text: str) -> list[str]:
    """Each relative link in `text` (the content of `page`) that reaches nothing, with why."""
    problems = []
    for target in _LINK.findall(_CODE.sub("", _prose(text))):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        path_part, _, anchor = target.partition("#")
        if not path_part:  # an anchor on this page
            if anchor not in anchors(text):
                problems.append(f"{target}: no heading #{anchor} on this page")
            continue
        destination = (page.parent / path_part).resolve()
        if not destination.exists():
            problems.append(f"{target}: no such file")
        elif (
            anchor
            and destination.suffix == ".md"
            and anchor not in anchors(destination.read_text(encoding="utf-8"))
        ):
            problems.append(f"{target}: no heading #{anchor} in {destination.name}")
    return problems


def test_readme_is_a_front_door_under_200_lines() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines < README_MAX_LINES, (
        f"README.md has {lines} lines; keep it under {README_MAX_LINES} and move the "
        "detail to docs/"
    )


def test_every_relative_link_in_the_readme_and_docs_resolves() -> None:
    problems = []
    for page in _pages():
        text = page.read_text(encoding="utf-8")
        problems += [f"{page.relative_to(ROOT)}: {p}" for p in broken_links(page, text)]
    assert not problems, "Links that reach nothing:\n" + "\n".join(problems)


def test_configuration_names_every_variable_of_the_env_example() -> None:
    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    listed = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", example, re.M))
    # A family such as `STRIPE_PRICE_<PLAN>_<INTERVAL>` is documented once, as a pattern.
    families = [
        re.compile(re.sub(r"<[A-Z]+>", "[A-Z]+", name))
        for name in re.findall(r"`([A-Z][A-Z0-9_]*<[A-Z<>_]+)`", page)
    ]
    missing = sorted(
        name
        for name in listed
        if f"`{name}`" not in page and not any(f.fullmatch(name) for f in families)
    )
    assert missing == [], f"docs/configuration.md does not name: {missing}"


def test_the_link_checker_catches_what_it_should(tmp_path: Path) -> None:
    # Proof that the link test can fail: a missing file, a missing heading, and their
    # working twins; links in code are not links.
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "guide.md").write_text("# Guide\n\n## What `make run` writes\n")
    page = tmp_path / "README.md"
    broken = [
        "[x](docs/gone.md)",
        "[x](docs/guide.md#no-such-heading)",
        "[x](#nowhere)",
    ]
    working = [
        "[x](docs/guide.md)",
        "[x](docs/guide.md#what-make-run-writes)",
        "[x](https://example.com/gone.md)",
        "`[x](docs/gone.md)`",
        "```\n[x](docs/gone.md)\n```",
        "[x](#readme-heading)",
    ]
    heading = "# README heading\n\n"
    assert all(broken_links(page, heading + link) for link in broken)
    assert not any(broken_links(page, heading + link) for link in working)
