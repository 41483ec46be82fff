"""Request types for views, so that the type checker knows who the user is.

Django types `request.user` as `User | AnonymousUser`. Behind `@login_required` (or after
`is_authenticated(request)`) the user is always a signed-in `accounts.User`: annotate such
views with `AuthenticatedHttpRequest` instead of `HttpRequest` (the pattern healthchecks
uses). It is a type only: at run time the request stays Django's `HttpRequest`.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from typing_extensions import TypeIs

from accounts.models import User


class AuthenticatedHttpRequest(HttpRequest):
    user: User


def is_authenticated(request: HttpRequest) -> TypeIs[AuthenticatedHttpRequest]:
    """`request.user.is_authenticated`, which also tells the type checker that
    `request` is an `AuthenticatedHttpRequest` where it is true."""
    return request.user.is_authenticated


def signed_in_user(request: HttpRequest) -> User:
    """`request.user` in a view that only runs for a signed-in user (the admin's, behind
    `admin_site.admin_view`), typed as `User`; anyone else is refused (403)."""
    user = request.user
    if not isinstance(user, User):
        raise PermissionDenied("Sign in first.")
    return user
