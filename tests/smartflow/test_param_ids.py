"""tests/param_ids.py and its hook in tests/conftest.py: a parametrized test named after
a value that holds the time stops the collection, so that pytest-xdist's workers never
collect differently named tests. No database."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from django.core import signing

from tests.param_ids import clock_in

NOW = int(time.time())


@pytest.mark.parametrize(
    "value",
    [
        NOW,
        NOW + 3 * 86400,
        time.time(),
        NOW * 1000,
        str(NOW),
        f"renewal-{NOW - 3600}",
        signing.dumps(["sub_x", "launchpack", 1], salt="billing.switch.quote"),
        datetime.now(UTC).date().isoformat(),
        f"due {datetime.now(UTC).date() + timedelta(days=30)}",
        str(NOW).encode(),
    ],
    ids=["now", "in-3-days", "float", "ms", "str", "in-str", "signed", "today", "in-30-d", "b"],
)
def test_a_value_that_holds_the_time_is_found(value):
    assert clock_in(value) is not None


@pytest.mark.parametrize(
    "value",
    [
        "",
        "forged",
        0,
        42,
        49.00,
        True,
        "9999-12-31",
        "2024-02-30",
        "oneoff-00012345-flowkit",
        "+447700900123",
        "cs_0123456789abcdef",
        NOW - 10 * 365 * 86400,
        signing.dumps(["sub_x"], salt="s").replace(":", ""),
        None,
        datetime.now(UTC).date(),  # pytest names it argname+index, never by its value
    ],
    ids=[
        "empty",
        "word",
        "zero",
        "int",
        "float",
        "bool",
        "far-date",
        "bad-date",
        "order-no",
        "phone",
        "session-id",
        "10-years-ago",
        "unsigned",
        "none",
        "date-object",
    ],
)
def test_a_value_without_the_time_passes(value):
    assert clock_in(value) is None


def test_the_collection_refuses_a_parameter_that_holds_the_time(request):
    hook = request.config.pluginmanager.hook.pytest_make_parametrize_id
    token = signing.dumps(["sub_other", "launchpack", NOW], salt="billing.switch.quote")

    with pytest.raises(pytest.fail.Exception, match="holds a time near now"):
        hook(config=request.config, val=token, argname="quote")
    assert hook(config=request.config, val="forged", argname="quote") is None
