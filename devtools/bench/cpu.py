"""How much CPU the rest of the machine took while the bench measured.

The bench shares its cores with whatever else runs (other people's test suites, say).
`CpuWatch` samples /proc twice a second during a phase and adds up the CPU time of every
process that is not the bench's: not this process or its descendants, not a PostgreSQL
backend of the bench database or one of its parallel workers. A process's own CPU time
counts (not its reaped children's: those were sampled themselves). Processes that live
less than a sampling interval are missed, so this is a lower bound. Linux only;
elsewhere it reports nothing.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")
TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
INTERVAL = 0.5


@dataclass
class Foreign:
    seconds: float  # CPU seconds others used during the phase
    available: float  # CPU seconds the machine had: wall time x cores
    # The busiest other command lines, with their CPU seconds.
    top: list[tuple[str, float]] = field(default_factory=list)

    @property
    def share(self) -> float:
        return self.seconds / self.available if self.available else 0.0


def _processes() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, its own CPU ticks, command line)."""
    found: dict[int, tuple[int, int, str]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone meanwhile
        name, rest = stat.split("(", 1)[1].rsplit(")", 1)
        fields = rest.split()
        # After the command: state, ppid, ..., utime, stime (fields 14 and 15 of stat).
        own = int(fields[11]) + int(fields[12])
        # Kernel threads have no command line: their name, bracketed as ps shows it.
        found[int(entry.name)] = (int(fields[1]), own, cmdline.strip() or f"[{name}]")
    return found


class CpuWatch:
    """Start before a phase, stop after it: the CPU others used meanwhile."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.root = os.getpid()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._started = 0.0
        # Per other process: (ticks when first seen, ticks when last seen, command line).
        self._others: dict[int, tuple[int, int, str]] = {}

    def _bench_pids(self, processes: dict[int, tuple[int, int, str]]) -> set[int]:
        ours: set[int] = set()
        for pid, (_ppid, _own, cmdline) in processes.items():
            ancestor, depth = pid, 0
            while ancestor > 1 and depth < 64:
                if ancestor == self.root:
                    ours.add(pid)
                    break
                ancestor, depth = processes.get(ancestor, (0, 0, ""))[0], depth + 1
            # A backend's title names its database: "postgres: ... user db host ...".
            if cmdline.startswith("postgres:") and f" {self.database} " in f"{cmdline} ":
                ours.add(pid)
        for pid, (_ppid, _own, cmdline) in processes.items():
            # A parallel query's helpers are titled "parallel worker for PID <leader>".
            leader = cmdline.rsplit("parallel worker for PID ", 1)
            if len(leader) == 2 and leader[1].strip().isdigit() and int(leader[1]) in ours:
                ours.add(pid)
        return ours

    def _sample(self, *, first: bool) -> None:
        processes = _processes()
        ours = self._bench_pids(processes)
        for pid, (_ppid, own, cmdline) in processes.items():
            if pid in ours:
                continue
            # Seen at the start: count from here. Appeared later: it started during the
            # phase, so all of its CPU time is the phase's.
            baseline = self._others.get(pid, (own if first else 0, 0, ""))[0]
            self._others[pid] = (baseline, own, cmdline)

    def _run(self) -> None:
        while not self._stop.wait(INTERVAL):
            self._sample(first=False)

    def start(self) -> None:
        if not (PROC / "stat").exists():
            return
        self._others = {}
        self._stop.clear()
        self._started = time.monotonic()
        self._sample(first=True)
        self._thread = threading.Thread(target=self._run, name="cpu-watch", daemon=True)
        self._thread.start()

    def stop(self) -> Foreign | None:
        if self._thread is None:
            return None
        self._stop.set()
        self._thread.join()
        self._thread = None
        self._sample(first=False)
        wall = time.monotonic() - self._started
        used = sorted(
            ((last - first, cmdline) for first, last, cmdline in self._others.values()),
            reverse=True,
        )
        return Foreign(
            seconds=sum(ticks for ticks, _ in used) / TICK,
            available=wall * (os.cpu_count() or 1),
            top=[(cmd[:60], ticks / TICK) for ticks, cmd in used[:3] if ticks > 0],
        )
