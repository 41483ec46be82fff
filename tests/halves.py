"""Which half of `make test` runs a test (tests/conftest.py deselects the others).

`make test` runs SQLite and PostgreSQL side by side, one per core, and names each run's
half in TEST_HALF (only when both run). What does not depend on the engine of the test
database runs in one half only, placed to even out the two (CI's 20 minutes); a plain
`pytest` runs everything. The longest matching path decides.
"""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parent
ONE_HALF = {
    # The journeys test pages and flows, not SQL; PostgreSQL is production's engine, and
    # the two-tabs journey's locks are PostgreSQL's.
    "e2e": "postgresql",
    # Pages' widths and the dunning journeys: no lock or query of PostgreSQL's own, and
    # without them the PostgreSQL half (the slower) ran four minutes longer than SQLite's.
    "e2e/test_admin_widths.py": "sqlite",
    "e2e/test_dunning_journeys.py": "sqlite",
    # Pages and emails of an upgrade and of a period's end, nothing of PostgreSQL's own: the
    # PostgreSQL half still ran 2:45 longer than SQLite's (13:12 against 10:26, --durations).
    "e2e/test_period_end_journeys.py": "sqlite",
    "e2e/test_upgrade_journeys.py": "sqlite",
    # `make run` in a copy, on its own SQLite database whatever the half.
    "e2e/test_first_ten_minutes.py": "sqlite",
    # One thread delivering events in every order: the plan logic, not the engine.
    "reliability/test_event_orderings.py": "sqlite",
    # Its web server and worker (about 20 PostgreSQL connections) run in the PostgreSQL
    # half: in the SQLite half they met the 50 simultaneous webhooks of
    # reliability/test_webhook_workers.py (two workers, a live server) and PostgreSQL's
    # 100 connections ran out ("too many clients"), failing both.
    "smartflow/test_deploy_units.py": "postgresql",
    # Journeys with nothing of PostgreSQL's own, to the SQLite half to even out the one
    # above (67 s): billing, Direct Debit, staff, promotion and VAT, annual, trial.
    "e2e/test_billing_journeys.py": "sqlite",
    "e2e/test_bank_debit_journey.py": "sqlite",
    "e2e/test_staff_journeys.py": "sqlite",
    "e2e/test_promotion_vat_journeys.py": "sqlite",
    "e2e/test_annual_journeys.py": "sqlite",
    "e2e/test_trial_journeys.py": "sqlite",
    # `check --deploy` in fresh interpreters on `sqlite://` whatever the half (18 s).
    "reliability/test_deploy_settings.py": "sqlite",
}


def half_of(path: Path) -> str | None:
    """The half of `make test` the test file at `path` runs in; None: both."""
    matches = [k for k in ONE_HALF if path.is_relative_to(TESTS / k)]
    return ONE_HALF[max(matches, key=len)] if matches else None
