"""tests/halves.py: under `make test`, what does not depend on the database engine runs
in one of its two halves, and everything else in both. No database."""

from __future__ import annotations

import pytest

from tests.halves import TESTS, half_of


@pytest.mark.parametrize(
    ("path", "half"),
    [
        ("e2e/test_standing_journeys.py", "postgresql"),
        ("e2e/test_first_ten_minutes.py", "sqlite"),
        ("reliability/test_event_orderings.py", "sqlite"),
        ("smartflow/test_deploy_units.py", "postgresql"),
        ("reliability/test_worker_killed.py", None),
        ("billing/test_checkout.py", None),
    ],
)
def test_each_test_file_runs_in_its_half(path, half):
    assert (TESTS / path).is_file()
    assert half_of(TESTS / path) == half
