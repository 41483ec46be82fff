"""The hookup to dj-stripe: one receiver, for every event type in billing.handlers'
`HANDLERS`, that runs the event's one handler.

dj-stripe sends an event's signal (`WEBHOOK_SIGNALS[event.type]`) after it has stored the
event, from `Event.process` or `Event.invoke_webhook_handlers` (a "process again"), both
called by the worker inside its transaction (billing/webhook_queue.py). Its own receivers,
which re-read and sync the object from Stripe, were connected first (the djstripe app
is ready before billing), so they have run when ours does.
"""

from __future__ import annotations

from typing import Any

from djstripe.event_handlers import djstripe_receiver
from djstripe.models import Event

from billing.handlers import HANDLERS


@djstripe_receiver(sorted(HANDLERS))
def stripe_event_handle(sender: Any, event: Event, **kwargs: Any) -> None:
    HANDLERS[event.type](event)
