"""The load generator of `make bench`, run as its own process (no Django in here).

    python devtools/bench/load.py PLAN.json      # prints one JSON result on stdout

PLAN is a JSON object:
- {"mode": "sequences", "host", "port", "path", "secret", "payloads": FILE, "concurrency",
   "repeat": N}: FILE holds a list of sequences, each a list of webhook payloads
  (strings), sent N times over (default once). Each thread takes the next sequence and
  POSTs its payloads in order, signed the way Stripe signs (`Stripe-Signature:
  t=<now>,v1=HMAC-SHA256(secret, "t.payload")`) at send time, each after the previous
  one was acknowledged, as Stripe does for one customer.
- {"mode": "get", "host", "port", "path", "cookie", "concurrency", "seconds" | "count",
   "warmup": N}: GETs with a session cookie for a fixed time or number of requests,
  after N unmeasured ones.

A request's time runs from opening the connection to reading the whole response: the
time until the sender has its acknowledgement, including any wait in the server's queue.
Threads share one interpreter, so this process also costs CPU on the machine it measures.
Each request slower than SLOW_SECONDS is listed (`slow`) with when it started, after the
first (`started_unix`): whether slow acknowledgements come together (the server, or this
process, stalled) or alone.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import math
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

TIMEOUT_SECONDS = 120
# A request slower than this is listed with when it started (`slow` in the result): a
# p99 says how many, the list says when, to set beside the server's and workers' logs.
SLOW_SECONDS = 0.050


@dataclass
class Tally:
    """What all threads measured; appended to under `lock`."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    seconds: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    exceptions: Counter[str] = field(default_factory=Counter)
    # time.monotonic() and time.time() at the first request; each slow request's
    # (monotonic start, seconds).
    started: tuple[float, float] | None = None
    slow: list[tuple[float, float]] = field(default_factory=list)

    def begin(self) -> float:
        """A request starts: its monotonic time (the tally's first one is kept)."""
        at = time.monotonic()
        with self.lock:
            if self.started is None:
                self.started = (at, time.time())
        return at

    def add(self, status: int | None, seconds: float, error: str = "", *, at: float = 0.0) -> None:
        with self.lock:
            if status is None:
                self.exceptions[error] += 1
            else:
                self.statuses[status] += 1
                self.seconds.append(seconds)
                if seconds > SLOW_SECONDS:
                    self.slow.append((at, seconds))


def request(
    host: str, port: int, method: str, path: str, body: bytes | None, headers: dict[str, str]
) -> tuple[int, float]:
    """One request on a fresh connection (gunicorn's sync workers close every one)."""
    started = time.perf_counter()
    connection = http.client.HTTPConnection(host, port, timeout=TIMEOUT_SECONDS)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status, time.perf_counter() - started
    finally:
        connection.close()


def measured(tally: Tally, send: Callable[[], tuple[int, float]]) -> None:
    at = tally.begin()
    try:
        status, seconds = send()
    except (OSError, http.client.HTTPException) as exc:
        tally.add(None, 0.0, f"{type(exc).__name__}: {exc}")
    else:
        tally.add(status, seconds, at=at)


def signature(secret: str, payload: bytes, timestamp: int) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def run_sequences(plan: dict[str, Any], tally: Tally) -> float:
    sequences: list[list[str]] = json.loads(Path(plan["payloads"]).read_text())
    # A fast endpoint gets the same sequences several times over, for a steadier rate.
    queue: Iterator[list[str]] = iter(sequences * plan.get("repeat", 1))
    queue_lock = threading.Lock()
    host, port, path, secret = plan["host"], plan["port"], plan["path"], plan["secret"]

    def worker() -> None:
        while True:
            with queue_lock:
                sequence = next(queue, None)
            if sequence is None:
                return
            for text in sequence:
                payload = text.encode()
                headers = {
                    "Content-Type": "application/json; charset=utf-8",
                    "Stripe-Signature": signature(secret, payload, int(time.time())),
                    "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
                }
                measured(tally, partial(request, host, port, "POST", path, payload, headers))

    return threads_run(worker, plan["concurrency"])


def run_get(plan: dict[str, Any], tally: Tally) -> float:
    host, port, path = plan["host"], plan["port"], plan["path"]
    headers = {"Cookie": plan.get("cookie", ""), "Accept": "application/json"}
    for _ in range(plan.get("warmup", 0)):
        request(host, port, "GET", path, None, headers)
    # Measured from here: the deadline starts after the warm-up.
    deadline: float | None = time.perf_counter() + plan["seconds"] if "seconds" in plan else None
    remaining: list[int] = [plan.get("count", 0)]
    remaining_lock = threading.Lock()

    def more() -> bool:
        if deadline is not None:
            return time.perf_counter() < deadline
        with remaining_lock:
            remaining[0] -= 1
            return remaining[0] >= 0

    def worker() -> None:
        while more():
            measured(tally, partial(request, host, port, "GET", path, None, headers))

    return threads_run(worker, plan["concurrency"])


def threads_run(target: Callable[[], None], concurrency: int) -> float:
    """Run `target` in `concurrency` threads; the wall-clock seconds until all are done."""
    threads = [threading.Thread(target=target, daemon=True) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def summary(tally: Tally, wall: float) -> dict[str, Any]:
    """Counts, rate and percentiles; `samples_s` keeps every time so runs can be merged."""
    times = sorted(tally.seconds)
    total = len(times) + sum(tally.exceptions.values())
    ok = sum(n for status, n in tally.statuses.items() if 200 <= status < 300)
    return {
        "requests": total,
        "ok": ok,
        "statuses": {str(s): n for s, n in sorted(tally.statuses.items())},
        "non_2xx": {str(s): n for s, n in sorted(tally.statuses.items()) if not 200 <= s < 300},
        "exceptions": dict(tally.exceptions),
        "seconds": wall,
        "per_second": total / wall if wall else math.nan,
        "ms": {
            "p50": percentile(times, 50) * 1000,
            "p95": percentile(times, 95) * 1000,
            "p99": percentile(times, 99) * 1000,
            "max": (times[-1] if times else math.nan) * 1000,
            "mean": (sum(times) / len(times) if times else math.nan) * 1000,
        },
        "samples_s": times,
        # Unix time of the first request, and each slow request's start after it (s) and
        # its time (ms), in the order they started.
        "started_unix": tally.started[1] if tally.started else None,
        "slow": [
            [round(at - tally.started[0], 3), round(took * 1000, 1)]
            for at, took in sorted(tally.slow)
        ]
        if tally.started
        else [],
    }


def merge(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One summary of several runs (rounds of the same requests): their requests over
    the sum of their wall-clock times, percentiles over all their samples."""
    tally = Tally()
    for result in results:
        tally.seconds += result["samples_s"]
        tally.statuses.update({int(s): n for s, n in result["statuses"].items()})
        tally.exceptions.update(result["exceptions"])
    return summary(tally, sum(result["seconds"] for result in results))


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write(__doc__ or "")
        return 2
    plan = json.loads(Path(argv[1]).read_text())
    runner = {"sequences": run_sequences, "get": run_get}[plan["mode"]]
    tally = Tally()
    wall = runner(plan, tally)
    sys.stdout.write(json.dumps(summary(tally, wall)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
