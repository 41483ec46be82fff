"""bench/RESULTS.md from the results bench/run.py collected (also kept, raw, in
bench/out/results.json). Every number in the file comes from the run; the notes' prose
is fixed, their numbers are the run's."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# A figure this far from its ceiling gets a note saying why.
FAR_THROUGHPUT = 0.5  # below half the ceiling's rate
FAR_COST = 2.0  # more than twice the ceiling's time, queries or memory
# Others using more than this share of the machine's CPU during a phase get a warning.
BUSY_SHARE = 0.10


@dataclass
class Row:
    figure: str
    measured: float
    ceiling: float
    unit: str
    higher_is_better: bool
    ceiling_is: str
    note: str = ""

    def ratio(self) -> float:
        return self.measured / self.ceiling if self.ceiling else float("nan")

    def far(self) -> bool:
        if self.higher_is_better:
            return self.ratio() < FAR_THROUGHPUT
        return self.ratio() > FAR_COST


def _num(value: float, unit: str) -> str:
    if unit == "ms" and value < 10:
        return f"{value:.1f} ms"
    if unit in ("ms", "queries", "/s") and value >= 10:
        return f"{value:,.0f}{' ' + unit if unit != '/s' else '/s'}"
    if unit == "/s":
        return f"{value:.1f}/s"
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "MiB":
        return f"{value:,.0f} MiB"
    return f"{value:,.0f} {unit}"


def _ratio(row: Row) -> str:
    ratio = row.ratio()
    if ratio >= 10:
        return f"{ratio:,.0f}×"
    return f"{ratio:.2f}×" if ratio >= 0.1 else f"{ratio:.3f}×"


def _failures(r: dict[str, Any]) -> list[str]:
    """What went wrong during the run: answers that were not 2xx, unprocessed events,
    errors in the server's logs."""
    results = [
        r[k][part] for k in ("webhooks_fast", "webhooks_slow") for part in ("ceiling", "figure")
    ]
    results += list(r["gating"].values())
    results += [page[f"{side}_http"] for page in r["admin"] for side in ("real", "bare")]
    failed = sum(res["requests"] - res["ok"] for res in results)
    unprocessed = sum(
        r[k]["stats"]["triggers_unprocessed"] for k in ("webhooks_fast", "webhooks_slow")
    )
    logged = len(r["problems_fast"]) + len(r["problems_slow"])
    found = []
    if failed:
        found.append(f"{failed} requests were not answered 2xx")
    if unprocessed:
        found.append(f"{unprocessed} webhook events were not processed")
    if logged:
        found.append(f"the server logs have {logged} ERROR lines or tracebacks")
    return found


def _calls(profile: list[dict[str, Any]]) -> int:
    return sum(len(p["stripe_calls"]) for p in profile)


def rows_build(r: dict[str, Any]) -> tuple[list[Row], dict[str, str]]:
    """The table's rows and the notes for the rows that are far from their ceilings."""
    rows: list[Row] = []
    notes: dict[str, str] = {}
    profile = r["data"]["profile"]
    per_event_calls = _calls(profile) / len(profile)
    per_event = {
        who: sum(p["queries"].get(who, 0) for p in profile) / len(profile)
        for who in ("dj-stripe", "app", "sandbox", "transaction", "django")
    }
    per_event_queries = sum(per_event.values())
    slow_ms = r["slow_stripe_ms"]
    workers = r["gunicorn_workers"]
    concurrency = r["concurrency"]
    sig = "signature-only view"

    for key, label, note in (
        ("webhooks_fast", "Webhooks, Stripe instant", "W1"),
        ("webhooks_slow", f"Webhooks, Stripe +{slow_ms} ms", "W2"),
    ):
        fig, ceil = r[key]["figure"], r[key]["ceiling"]
        rows.append(
            Row(
                f"{label}: events/s (c={concurrency})",
                fig["per_second"],
                ceil["per_second"],
                "/s",
                True,
                sig,
                note,
            )
        )
        for p in ("p50", "p95", "p99"):
            rows.append(
                Row(
                    f"{label}: {p} time to acknowledge",
                    fig["ms"][p],
                    ceil["ms"][p],
                    "ms",
                    False,
                    sig,
                    note,
                )
            )
    notes["W1"] = (
        f"A new customer's three events cost on average {per_event_queries:.0f} SQL "
        f"statements and {per_event_calls:.1f} Stripe API calls each, measured in-process "
        "on one more customer (*Per event* below); the ceiling costs one query (the "
        f"endpoint's secret) and an HMAC. Of those statements {per_event['dj-stripe']:.0f} "
        "are dj-stripe's (it stores a trigger row and the event, re-reads the object from "
        "Stripe and syncs it with its related rows, looking up its API key and account "
        f"again and again), {per_event['transaction']:.0f} are savepoints of the nested "
        f"atomic blocks, and {per_event['app']:.0f} are ours (find the user, lock it, "
        "recompute the plan, write the PlanChange, queue the welcome email and SMS), all in "
        'one transaction. "Instant" is not free either: the sandbox answers inside the '
        f"same gunicorn worker from the same PostgreSQL ({per_event['sandbox']:.0f} "
        "statements per event, plus its JSON work: what Stripe would do on its side). The "
        f"times include queueing: {concurrency} senders share {workers} sync workers, so "
        "a request mostly waits for the ones ahead of it."
    )
    bound = workers / (per_event_calls * slow_ms / 1000)
    notes["W2"] = (
        f"Each Stripe call now holds a sync worker for {slow_ms} ms, inside dj-stripe's "
        f"transaction: {per_event_calls:.1f} calls per event make at least "
        f"{per_event_calls * slow_ms / 1000:.1f} s per event, so {workers} workers cannot "
        f"exceed about {bound:.1f} events/s whatever the CPU, and 8 senders queue behind "
        "them. Stripe's latency, not our code, sets this figure; more workers (or threads) "
        "raise it linearly until the database or CPU is the limit."
    )

    gating = r["gating"]
    fig, ceil = gating["/feature/ai_concierge/"], gating["/bench/constant/"]
    lj = "`login_required` constant JSON"
    rows.append(
        Row(
            f"Gating `/feature/ai_concierge/` (LaunchPack: 200): requests/s (c={concurrency})",
            fig["per_second"],
            ceil["per_second"],
            "/s",
            True,
            lj,
            "G",
        )
    )
    rows.append(Row("Gating: p99", fig["ms"]["p99"], ceil["ms"]["p99"], "ms", False, lj, "G"))
    notes["G"] = (
        "The plan check reads the plan from the user row the session already loaded: no "
        "query beyond the ceiling's (session, user), so the two are within noise."
    )

    counts = r["admin_counts"]
    for page in r["admin"]:
        bare = "bare change list" + ("" if page["bare"].endswith("/") else ", same query")
        real_q, bare_q = page["real_queries"], page["bare_queries"]
        rows.append(
            Row(
                f"Admin users, {page['label']}: queries",
                real_q["queries"],
                bare_q["queries"],
                "queries",
                False,
                bare,
                "A",
            )
        )
        rows.append(
            Row(
                f"Admin users, {page['label']}: time per page",
                page["real_http"]["ms"]["p50"],
                page["bare_http"]["ms"]["p50"],
                "ms",
                False,
                bare,
                "A",
            )
        )
    slowest = "; ".join(
        f"{page['label']}: {page['real_queries']['slowest_ms']:,.0f} ms, of which JIT "
        f"compilation {page['real_queries']['slowest_jit_ms']:,.0f} ms; with JIT off "
        f"{page['real_queries']['slowest_no_jit_ms']:,.0f} ms (bare list: "
        f"{page['bare_queries']['slowest_ms']:,.0f} ms)"
        for page in r["admin"]
    )
    notes["A"] = (
        f"{counts['users']:,} users and {counts['plan_changes']:,} plan changes, 100 users "
        "a page. Both lists send the same statements (session, user, two counts, the page); "
        "the real one computes three more columns with correlated subqueries (billing "
        "status of the latest subscription, Stripe customer, last plan change), has the "
        "billing-status filter and also searches phone numbers and Stripe customer ids (a "
        "join). PostgreSQL evaluates those subqueries only for the rows it returns on the "
        "first page, but for every user when filtering on billing status (in the count and "
        "again for the page), and for every row skipped by OFFSET on a deep page (page "
        f"{r['admin_middle_page']:,}: {(r['admin_middle_page'] - 1) * 100:,} rows). Such a "
        "statement's cost estimate also crosses PostgreSQL's `jit_above_cost`, so "
        "PostgreSQL JIT-compiles it before running it; turning JIT off for the app's "
        "connections would save that (a deployment choice, not made here). Slowest "
        "statement of each real page (EXPLAIN ANALYZE, in-process, then again with "
        f"`SET LOCAL jit = off`): {slowest}."
    )

    scan, rec = r["scan"], r["reconcile"]
    scan_label = "bare keyset scan of the same users"
    rows.append(
        Row("`reconcile_plans`: time", rec["seconds"], scan["seconds"], "s", False, scan_label, "R")
    )
    rows.append(
        Row(
            "`reconcile_plans`: queries",
            rec["queries"],
            scan["queries"],
            "queries",
            False,
            scan_label,
            "R",
        )
    )
    rows.append(
        Row(
            "`reconcile_plans`: peak memory (RSS of the process)",
            rec["peak_rss_kib"] / 1024,
            scan["peak_rss_kib"] / 1024,
            "MiB",
            False,
            scan_label,
            "R",
        )
    )
    rec_mem, scan_mem = r["reconcile_memory"], r["scan_memory"]
    rows.append(
        Row(
            "`reconcile_plans`: peak Python memory of the job (tracemalloc)",
            rec_mem["python_peak_kib"] / 1024,
            scan_mem["python_peak_kib"] / 1024,
            "MiB",
            False,
            scan_label,
            "R",
        )
    )
    notes["R"] = (
        f'"{rec["summary"]}" For each batch of {r["reconcile_batch"]:,} users it loads their '
        "subscriptions (each with its whole Stripe JSON), one-off purchases and overrides "
        "in three queries and decides every plan in Python; each drifted user is then fixed "
        "through `plan_refresh` (lock, recompute, update, PlanChange), which is where most "
        "statements beyond the scan's come from. Memory: the process's peak RSS is mostly "
        "Django, stripe-python and dj-stripe loaded before the job "
        f"({rec['rss_before_kib'] / 1024:,.0f} MiB); the job's own peak (tracemalloc, "
        "a second pass, in which nothing was left to fix) is one batch's facts."
    )
    return rows, notes


def report_write(r: dict[str, Any], path: Path) -> None:
    rows, notes = rows_build(r)
    m = r["machine"]
    crowd = r["data"]["crowd"]
    used = sorted({row.note for row in rows if row.note and row.far()})
    lines = [
        "# SmartFlow benchmark results",
        "",
        "Written by `make bench` (`bench/run.py`) from one run; run it again rather than "
        "editing. How it works: `bench/README.md`.",
        "",
        f"- **Date**: {m['date']}; commit `{m['commit']}`"
        + (f" plus uncommitted changes to {', '.join(m['changed'])}" if m["changed"] else ""),
        f"- **Machine**: {m['cores']} cores ({m['cpu']}), {m['memory_gib']:.1f} GiB memory, "
        f"Linux {m['kernel']}, Python {m['python']}, PostgreSQL {m['postgresql']}; load "
        f"average {r['loadavg_start']:.2f} when the run started",
        f"- **Server**: gunicorn with {r['gunicorn_workers']} sync workers, DEBUG off, "
        "`manage.py db_worker` beside it, PostgreSQL on the same machine, the Stripe "
        "sandbox (`stripe_sandbox/`) standing in for Stripe. Every ceiling is served by "
        "the same gunicorn (or, for `reconcile_plans`, run the same way) and measured in "
        "the same run, just before its figure or alternating with it.",
        f"- **Load**: `bench/load.py`, a separate Python process ({r['concurrency']} threads, "
        "one connection per request); it shares the machine's "
        f"{m['cores']} cores with gunicorn, the worker and PostgreSQL.",
        f"- **Data**: {crowd['users']:,} seeded users and {crowd['plan_changes']:,} plan "
        f"changes ({crowd['subscriptions']:,} subscriptions, {crowd['oneoffs']:,} one-off "
        f"purchases, {crowd['drifted']:,} users stored on a plan nothing explains), plus the "
        "bench's own webhook customers.",
        f"- **Reproduce**: `make bench` (this run took {r['elapsed_s'] / 60:.1f} min).",
        "",
    ]
    if failures := _failures(r):
        lines += [f"> **This run was not clean**: {'; '.join(failures)} (see *Checks*).", ""]
    lines += [
        "| figure | measured | ceiling | measured ÷ ceiling | ceiling is | note |",
        "|---|---:|---:|---:|---|---|",
    ]
    for row in rows:
        note = f"[{row.note}](#{row.note.lower()})" if row.far() else ""
        lines.append(
            f"| {row.figure} | {_num(row.measured, row.unit)} | {_num(row.ceiling, row.unit)} "
            f"| {_ratio(row)} | {row.ceiling_is} | {note} |"
        )
    lines += [
        "",
        "How each figure is taken: webhook and gating figures come from the load "
        f"generator at concurrency {r['concurrency']} (times run from opening the connection "
        "to the last byte of the answer, so they include waiting for a free worker); the "
        "gating figure and its ceiling alternate in five rounds each. Admin time per page is "
        f"the median of {r['args']['admin_requests']} requests over HTTP, one at a time, "
        "alternating with the bare list; queries per page are counted in-process with "
        "Django's test client on the same database. `reconcile_plans` and its ceiling run "
        "in fresh processes after the server stopped: time excludes Django's start-up, "
        "queries are every SQL statement sent.",
        "",
        "## Notes",
        "",
    ]
    if not used:
        lines.append("Every figure is within the bounds of its ceiling (no note needed).")
    for key in used:
        lines += [f'<a id="{key.lower()}"></a>**{key}.** {notes[key]}', ""]
    lines += _checks(r)
    path.write_text("\n".join(lines).rstrip("\n") + "\n")


def _checks(r: dict[str, Any]) -> list[str]:
    lines = ["## Per event (one new customer, in-process)", ""]
    lines += [
        "| event | SQL statements | dj-stripe's | ours | sandbox's | transaction control "
        "| Stripe API calls | time |",
        "|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for p in r["data"]["profile"]:
        q = p["queries"]
        calls = "<br>".join(_call(c) for c in p["stripe_calls"]) or "none"
        lines.append(
            f"| `{p['type']}` | {sum(q.values())} | {q.get('dj-stripe', 0)} | "
            f"{q.get('app', 0)} | {q.get('sandbox', 0)} | {q.get('transaction', 0)} "
            f"| {len(p['stripe_calls'])}: {calls} | {p['ms']:.0f} ms |"
        )
    lines += [
        "",
        "Statements are counted by who sent them (the innermost dj-stripe, sandbox or "
        "SmartFlow frame); the time is in-process, one request at a time, no queue.",
    ]
    lines += ["", "## Checks", ""]
    for key, label in (("webhooks_fast", "Stripe instant"), ("webhooks_slow", "Stripe slow")):
        w = r[key]
        for part in ("ceiling", "figure"):
            res = w[part]
            lines.append(
                f"- Webhooks ({label}), {part}: {res['ok']}/{res['requests']} answered 2xx"
                + _errors(res)
            )
        s = w["stats"]
        lines.append(
            f"- Webhooks ({label}): {s['triggers']} triggers stored, "
            f"{s['triggers_unprocessed']} not processed; meanwhile the worker delivered "
            f"{s['worker_deliveries']} further events that the app's own Stripe calls caused "
            f"({s['worker_deliveries_ok']} acknowledged) and {s['onboarding_messages']} "
            "onboarding messages were queued"
        )
    for path, res in r["gating"].items():
        lines.append(
            f"- Gating `{path}`: {res['ok']}/{res['requests']} answered 2xx" + _errors(res)
        )
    for page in r["admin"]:
        for side in ("real", "bare"):
            res = page[f"{side}_http"]
            lines.append(
                f"- Admin `{page[side]}`: {res['ok']}/{res['requests']} answered 2xx" + _errors(res)
            )
    foreign = r.get("foreign", {})
    if foreign:
        lines.append(
            "- Other work on the machine while measuring (CPU time of processes other than "
            "the bench's and its database's backends, sampled twice a second: a lower bound): "
            + "; ".join(
                f"{name}: {f['seconds']:.1f} of {f['available']:.0f} CPU-seconds ({f['share']:.0%}"
                + (
                    f"; busiest: {', '.join(f'`{cmd}` {sec:.1f} s' for cmd, sec in f['top'])})"
                    if f.get("top")
                    else ")"
                )
                for name, f in foreign.items()
            )
        )
        busy = [name for name, f in foreign.items() if f["share"] > BUSY_SHARE]
        if busy:
            lines.append(
                f"  - **Warning**: others used more than {BUSY_SHARE:.0%} of the machine during "
                f"{', '.join(busy)}; those figures are lower than on an idle machine."
            )
    problems = r["problems_fast"] + r["problems_slow"]
    lines.append(f"- Server and worker logs: {len(problems)} ERROR lines or tracebacks")
    lines += [f"  - `{p}`" for p in problems[:10]]
    return lines


def _call(line: str) -> str:
    """ "GET /v1/subscriptions/sub_X1y2 -> 200" as "GET /v1/subscriptions/{id}"."""
    return re.sub(r"/[a-z]+(?:_test)?_[A-Za-z0-9]{6,}", "/{id}", line.split(" -> ")[0])


def _errors(res: dict[str, Any]) -> str:
    parts = [f"{n}× HTTP {s}" for s, n in res["non_2xx"].items()]
    parts += [f"{n}× {e}" for e, n in res["exceptions"].items()]
    return f" (errors: {', '.join(parts)})" if parts else ""
