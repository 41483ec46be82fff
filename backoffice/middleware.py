"""Staff sessions without their second factor reach only the steps to get it."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve

from backoffice.staff_2fa import ALLOWED_VIEWS, missing_step, step_redirect


class Staff2FAMiddleware:
    """Every page, not only the admin's: a staff session that has not passed its second
    factor (backoffice/staff_2fa.py) is sent to enrol or to enter a code, whatever URL
    it asks for, staff-only views under the admin and elsewhere alike. Customers pass
    straight through, and everyone does while STAFF_2FA_REQUIRED is off.

    After AuthenticationMiddleware and MessageMiddleware (settings.MIDDLEWARE)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        step = missing_step(request)
        if step is None or _allowed(request):
            return self.get_response(request)
        return step_redirect(request, step)


def _allowed(request: HttpRequest) -> bool:
    try:
        return resolve(request.path_info).view_name in ALLOWED_VIEWS
    except Resolver404:
        return False
