"""`make bench`'s renewal storm (devtools/bench/): its runs, the Stripe requests counted
from the workers' logs, and the report's table and issue 30's goal line. Pure functions:
no server, no database (a full storm takes many minutes)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from devtools.bench.report import _storm, storm_report_write, storm_section_write
from devtools.bench.run import storm_runs_parse, stripe_requests


def test_storm_runs_parse_pairs_processes_with_concurrency() -> None:
    assert storm_runs_parse("2xd, 1xdefault,2x1,1X8") == [(2, None), (1, None), (2, 1), (1, 8)]


@pytest.mark.parametrize("text", ["2", "0x4", "2x0", "2x", "x4", "2xfast", ""])
def test_storm_runs_parse_refuses_what_is_not_a_pair(text: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        storm_runs_parse(text)


def _line(second: int, millis: int, status: int, *, level: str = "INFO") -> str:
    return (
        f"2026-12-07 01:00:{second:02d},{millis:03d} {level} devtools.stripe_sandbox.client: "
        f"Stripe sandbox: GET /v1/invoices/in_X -> {status}"
    )


def test_stripe_requests_counts_the_drain_and_its_busiest_second(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    log.write_text(
        "\n".join(
            [
                _line(0, 500, 200),  # before the drain: not counted
                # The drain, 01:00:10 to 01:00:14: four requests within 01:00:11.2-12.1, one 429.
                _line(10, 0, 200),
                _line(11, 200, 200),
                _line(11, 600, 404),
                _line(11, 900, 200),
                _line(12, 100, 200),
                _line(12, 150, 429, level="WARNING"),
                _line(13, 0, 200),
                "2026-12-07 01:00:12,000 INFO devtools.stripe_sandbox: Stripe sandbox: "
                "webhook delivery stripe, seed 1",
                _line(20, 0, 200),  # after the drain
            ]
        )
        + "\n"
    )
    start = datetime(2026, 12, 7, 1, 0, 10, tzinfo=UTC)
    end = datetime(2026, 12, 7, 1, 0, 14, tzinfo=UTC)
    counted = stripe_requests(log, start, end)
    assert counted["answered"] == 6
    assert counted["peak_per_second"] == 4
    assert counted["mean_per_second"] == pytest.approx(6 / 4)
    assert counted["refused_429"] == 1
    assert counted["statuses"] == {"200": 7, "404": 1, "429": 1}


def _run(processes: int, concurrency: int, *, default: bool, **overrides: Any) -> dict[str, Any]:
    run: dict[str, Any] = {
        "processes": processes,
        "concurrency": concurrency,
        "concurrency_default": default,
        "cap_s": 1800.0,
        "timeout_s": 1800.0,
        "ack": {
            "ok": 2000,
            "requests": 2000,
            "per_second": 400.0,
            "ms": {"p50": 20.0, "p95": 30.0, "p99": 40.0},
            "non_2xx": {},
            "exceptions": {},
        },
        "total": 2000,
        "stored": 2000,
        "states": {"processed": 2000},
        "processed": 2000,
        "retried": 0,
        "rate_limited": 0,
        "drained": True,
        "span_s": 70.0,
        "per_second": 2000 / 70,
        "wait_s": {"p50": 30.0, "p99": 65.0, "max": 66.0},
        "stripe": {
            "answered": 7000,
            "statuses": {"200": 7000},
            "refused_429": 0,
            "mean_per_second": 85.0,
            "peak_per_second": 90,
        },
        "tasks_dropped": 0,
    }
    return run | overrides


def _results(*runs: dict[str, Any]) -> dict[str, Any]:
    calls = ["GET /v1/invoices/in_X -> 200", "GET /v1/subscriptions/sub_X -> 200"]
    return {
        "storm": list(runs),
        "data": {"profile_renewals": [{"stripe_calls": calls}]},
        "slow_stripe_ms": 300,
        "storm_concurrency": 16,
        "storm_default_concurrency": 8,
        "storm_stripe_rate_limit": 90.0,
        "storm_sandbox_rate_limit": 100,
    }


def test_storm_table_has_a_row_per_run_and_the_goal_met() -> None:
    lines = _storm(_results(_run(2, 8, default=True), _run(1, 1, default=False)))
    rows = [line for line in lines if line.startswith("| 2 |") or line.startswith("| 1 |")]
    assert rows[0].startswith("| 2 | 8 (default) | 2,000/2,000 | 20 / 40 ms |")
    assert "| 85.0 / 90 | 0 | 0 (0) |" in rows[0]
    assert rows[1].startswith("| 1 | 1 | ")
    goal = next(line for line in lines if line.startswith("- 2 × 8"))
    assert goal.count("(met)") == 3


def test_storm_goal_missed_on_rate_a_rate_limited_failure_or_a_slow_ack() -> None:
    slow = _run(2, 8, default=True, per_second=20.0, rate_limited=1, retried=1)
    slow["ack"] = {**slow["ack"], "ms": {"p50": 20.0, "p95": 50.0, "p99": 80.0}}
    goal = next(line for line in _storm(_results(slow)) if line.startswith("- 2 × 8"))
    assert goal.count("(missed)") == 3


def test_storm_goal_not_judged_without_two_processes_at_the_default() -> None:
    lines = _storm(_results(_run(2, 4, default=False)))
    assert any(line.startswith("- not judged") for line in lines)


def _written(out: str) -> dict[str, Any]:
    results = _results(_run(2, 8, default=True))
    return results | {
        "machine": {"date": "2026-12-07 01:00 UTC", "commit": "abc", "changed": [], "cores": 2},
        "loadavg_start": 0.5,
        "gunicorn_workers": 4,
        "worker_nice": 10,
        "elapsed_s": 600.0,
        "args": {"only": "storm", "out": out},
        "problems_storm": [],
    }


def test_a_storm_only_run_replaces_the_storm_section_of_results_md_alone(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    out.write_text(
        "# SmartFlow under load\n\n## Renewal storm\n\n| workers |\n| 4 | old |\n\n"
        "## Notes\n\nkept\n\n## Checks\n\n- Renewal storm, 4 worker(s): old\n"
        "- Gating: kept\n"
    )

    storm_section_write(_written("devtools/bench/RESULTS.md"), out)

    text = out.read_text()
    assert text.startswith("# SmartFlow under load\n\n## Renewal storm\n")
    assert "| 2 | 8 (default) |" in text
    assert "| 4 | old |" not in text
    assert "- Renewal storm, 4 worker(s): old" not in text  # the old run's check
    assert "- Renewal storm, 2 × 8:" in text  # this run's
    assert "## Notes\n\nkept" in text
    assert "- Gating: kept" in text
    assert text.index("## Renewal storm") < text.index("## Notes") < text.index("## Checks")


def test_storm_report_writes_its_partial_report(tmp_path: Path) -> None:
    results = _results(_run(2, 8, default=True))
    results |= {
        "machine": {"date": "2026-12-07 01:00 UTC", "commit": "abc", "changed": [], "cores": 2},
        "loadavg_start": 0.5,
        "gunicorn_workers": 4,
        "worker_nice": 10,
        "elapsed_s": 600.0,
        "args": {"only": "storm", "out": "devtools/bench/out/storm.md"},
        "problems_storm": [],
    }
    out = tmp_path / "storm.md"
    storm_report_write(results, out)
    text = out.read_text()
    assert "--only storm" in text
    assert "| 2 | 8 (default) |" in text
