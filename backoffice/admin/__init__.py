"""The back-office's admin classes, found by Django's admin autodiscovery.

billing first: it imports dj-stripe's admin so that its own dj-stripe classes replace
dj-stripe's registrations; users then declares the user page with its inlines;
authenticators replaces django-allauth's page of staff two-factor authenticators.
"""

from backoffice.admin import authenticators, billing, messages, privacy, users  # noqa: F401
