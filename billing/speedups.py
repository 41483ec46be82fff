"""Speed work that pays, kept apart from the rules it speeds up.

Each piece here was measured against its plain version in one `make bench` run
(`bench/run.py --only speed`, which switches a piece off with SPEED_PLAIN) and kept only
because it won by more than 20 % on its own figure (issue 29; bench/RESULTS.md, *Speed
work*). What lost was deleted.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings


@contextmanager
def heap_frozen() -> Iterator[None]:
    """Leave the objects alive now (Django, dj-stripe, stripe-python: the start-up heap)
    out of the collector's passes until the block ends; what the block allocates is
    still collected. For `reconcile_plans`, which allocates a few small objects for each
    of 100,000 users: each of the collector's full passes also walked the start-up heap.

    Measured (`bench/run.py --only speed`, 50,000 users, 3 alternating rounds, medians):
    a pass finding nothing to fix took 5.52 s plain and 4.21 s frozen, a 31 % win.
    SPEED_PLAIN=gc_freeze turns it off, for the bench to measure it again."""
    if "gc_freeze" in settings.SPEED_PLAIN:
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
