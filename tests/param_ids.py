"""Parametrized tests' ids must not hold the time they were collected at.

pytest names a parametrized test after its values when it is given no ids. A value made
from the clock at import (`sf.NOW + 86400`, a `signing.dumps` token, today's date) then
names the test differently in each process that collects it: pytest-xdist's workers
(`make test-fast`) collect separately, a second or a midnight apart, and the run stops
with "Different tests were collected". tests/conftest.py's pytest_make_parametrize_id
asks `clock_in` about every value pytest would turn into an id and stops the collection
at the first that holds a time near now, asking for explicit ids. It is a check for the
usual shapes (Unix seconds or milliseconds, Django's signed timestamps, ISO dates), not
a proof: a value is "near now" within NEAR of the clock.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, date, datetime, timedelta

import pytest
from django.core.signing import b62_decode

NEAR = timedelta(days=2 * 365)
_DIGITS = re.compile(r"(?<![\d.])\d{10}(?:\d{3})?(?:\.\d+)?(?![\d.])")
_ISO_DATE = re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)")
# Django's signing.dumps: "payload:timestamp:signature", the timestamp in base 62.
_SIGNED_TIME = re.compile(r"(?<=:)[0-9A-Za-z]{6}(?=:)")


def _near(seconds: float, now: float) -> bool:
    return abs(seconds - now) <= NEAR.total_seconds()


def clock_in(value: object, *, now: float | None = None) -> str | None:
    """The part of `value` that looks like a time near `now` (default: the clock), or
    None. Only str, bytes and numbers: pytest names a test after no other value."""
    now = time.time() if now is None else now
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        for seconds in (value, value / 1000):
            if _near(seconds, now):
                return repr(value)
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not isinstance(value, str):
        return None
    for match in _DIGITS.finditer(value):
        number = float(match.group())
        if _near(number, now) or _near(number / 1000, now):
            return match.group()
    for match in _SIGNED_TIME.finditer(value):
        if _near(b62_decode(match.group()), now):
            return match.group()
    today = datetime.fromtimestamp(now, tz=UTC).date()
    for match in _ISO_DATE.finditer(value):
        try:
            day = date(*map(int, match.groups()))
        except ValueError:
            continue
        if abs(day - today) <= NEAR:
            return match.group()
    return None


def refuse_clock_in_id(value: object, argname: str) -> None:
    """Stops the collection (pytest.fail) when `value` would put the time in a test id."""
    held = clock_in(value)
    if held is not None:
        pytest.fail(
            f"parametrize value for {argname!r} holds a time near now ({held}), so the "
            f"test's auto-generated id changes from one collection to the next and "
            f"pytest-xdist's workers refuse to run (tests/param_ids.py). Give it a fixed "
            f"id: parametrize(..., ids=[...]) or pytest.param(..., id=...).",
            pytrace=False,
        )
