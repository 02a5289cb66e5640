"""Access to the web pages: active staff users, through Django's login page."""

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def staff_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Decorate a view for active staff users only.

    An anonymous user is sent to `settings.LOGIN_URL` (Django's login page) with `next`; a
    logged-in user who is not active staff gets a 403 page that says so (sending them to the
    login page again, as `user_passes_test` does, only shows the form they just used).
    """

    @wraps(view)
    def check(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not (request.user.is_active and request.user.is_staff):
            return render(request, "web/not_staff.html", status=403)
        return view(request, *args, **kwargs)

    return login_required(check)
