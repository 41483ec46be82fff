"""WSGI entry point (gunicorn smartflow.wsgi)."""

from __future__ import annotations

import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smartflow.settings")

application = get_wsgi_application()


def heap_freeze() -> None:
    """Leave the web process's start-up heap out of the garbage collector's full passes.

    After start-up a gunicorn worker holds about 150,000 objects that live as long as it
    does (Django, dj-stripe, stripe-python, the URLconf and its views). Each full pass
    of the collector walks them all, and every request the worker holds waits. Frozen, a
    full pass walks only what requests left alive.

    Measured in the renewal storm's first run (`make bench BENCH_ARGS="--only storm
    --storm-runs 2xd,2xd"`, four benches alternating, plain with
    SPEED_PLAIN=web_gc_freeze): plain, each run's 2,000 acknowledgements met four full
    passes of 156-290 ms (the four workers answer alike, so they reach theirs together):
    p99 98 and 78 ms, the slowest 392 and 381 ms. Frozen, no pass over 10 ms: p99 66 and
    64 ms, the slowest 79 and 75 ms. SPEED_PLAIN=web_gc_freeze turns it off."""
    from django.conf import settings
    from django.urls import get_resolver

    if "web_gc_freeze" in settings.SPEED_PLAIN:
        return
    # Otherwise imported by the first request, after the freeze.
    get_resolver().url_patterns  # noqa: B018
    gc.collect()  # nothing that is already garbage is frozen
    gc.freeze()


heap_freeze()
