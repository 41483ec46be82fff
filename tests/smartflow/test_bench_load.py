"""`make bench`'s load generator (devtools/bench/load.py): what it reports of each
request. Pure: the requests are stand-ins that return a status and a time."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace

import pytest

from devtools.bench.load import Tally, measured, summary


def test_slow_requests_are_listed_with_when_they_started(monkeypatch: pytest.MonkeyPatch) -> None:
    clock: Iterator[float] = iter([100.0, 100.5, 101.25, 102.0])
    # The load generator's clock only (pytest's own stays the real one).
    fake = SimpleNamespace(monotonic=lambda: next(clock), time=time.time)
    monkeypatch.setattr("devtools.bench.load.time", fake)
    tally = Tally()
    # Four requests, started 0, 0.5, 1.25 and 2 s after the first: two over 50 ms.
    for status, seconds in [(200, 0.010), (200, 0.080), (200, 0.050), (500, 0.300)]:
        measured(tally, _answer(status, seconds))

    result = summary(tally, wall=2.5)

    assert result["slow"] == [[0.5, 80.0], [2.0, 300.0]]
    assert result["started_unix"] is not None
    assert result["requests"] == 4
    assert result["non_2xx"] == {"500": 1}


def _answer(status: int, seconds: float) -> Callable[[], tuple[int, float]]:
    return lambda: (status, seconds)


def test_a_request_that_failed_is_counted_not_listed() -> None:
    tally = Tally()

    def refused() -> tuple[int, float]:
        raise ConnectionRefusedError("refused")

    measured(tally, refused)

    result = summary(tally, wall=1.0)
    assert result["slow"] == []
    assert result["exceptions"] == {"ConnectionRefusedError: refused": 1}
