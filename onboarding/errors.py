"""What a failed send means for the next attempt, shared by the email and SMS clients.

Each provider module raises its own error type (mail.MailError, sms.SmsError), both
subclasses of ProviderError, so the outbox decides retries from two flags alone.
"""

from __future__ import annotations

import requests
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError


class ProviderError(Exception):
    """A send that did not succeed.

    retry:           transient (rate limit, provider 5xx, no connection): try again later.
    outcome_unknown: the request may have reached the provider (e.g. a read timeout), so
                     sending again could deliver the message twice: never retried.
    Neither flag:    permanent; trying again cannot help.
    """

    def __init__(self, reason: str, *, retry: bool = False, outcome_unknown: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.retry = retry
        self.outcome_unknown = outcome_unknown


def request_never_left(exc: BaseException) -> bool:
    """Whether a requests failure happened before the provider could have seen the request.

    Only a failure to connect qualifies. A read timeout or a connection dropped mid-way
    leaves the outcome unknown.
    """
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError):
        # requests wraps urllib3's MaxRetryError, whose `reason` is the real failure.
        wrapped = exc.args[0] if exc.args else None
        reason = getattr(wrapped, "reason", wrapped)
        return isinstance(reason, NewConnectionError | ConnectTimeoutError)
    return False
