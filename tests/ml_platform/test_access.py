"""Every URL of the project refuses anonymous and non-staff users (issue 5, item 5).

The test walks `django.urls.get_resolver()`, fills each path parameter with the id of an existing
connection, data source or run (admin object ids with the connection's id), and sends every HTTP
method the view allows (GET and POST for function views), as nobody, as a non-staff user logged in
by session, and as the same user with a DRF token. Expected:

- REST API (`api/`): anonymous 401 (TokenAuthentication's challenge), non-staff 403.
- Web pages (`etl/`): anonymous -> Django's login page with `next`; non-staff 403.
- Django admin (`admin/`): Django's own rule, everyone but active staff -> the admin login page.
- Documented exceptions: the scheduler webhook authenticates only by a Google OIDC token and the
  runner API only by its runner credential (never a person's): without one both answer 401,
  sessions are not accepted, a user's DRF token is 401 on the runner API; `api/health/` is
  public (load balancer check); Django's login, logout and password-reset pages (`accounts/`,
  `api-auth/`, `admin/login/`, `admin/logout/`) are public by nature; `accounts/password_change/`
  is for any logged-in user; the redirects (`/` and admin's `<id>/` shortcuts) only redirect.

The objects are still there afterwards: no refused request changed anything.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.views.generic import RedirectView
from rest_framework.authtoken.models import Token
from rest_framework.views import APIView

from ml_platform.models import Connection, DataSource, EtlRun
from ml_platform.services import connection_create, data_source_create, etl_run_create

pytestmark = pytest.mark.django_db

PUBLIC = {
    "api:health",
    "login",
    "logout",
    "password_reset",
    "password_reset_done",
    "password_reset_confirm",
    "password_reset_complete",
    "rest_framework:login",
    "rest_framework:logout",
    "admin:login",
    "admin:logout",
}
"""URL names anyone may use."""
ANY_LOGGED_IN = {"password_change", "password_change_done"}
"""URL names for any logged-in user (their own password)."""
OWN_TOKEN = {"api:sources:scheduler-webhook"}
"""Authenticated only by a Google OIDC token: no token, no session -> 401."""
RUNNER = {
    "api:sources:config",
    "api:runs:result",
    "api:runs:heartbeat",
    "api:runs:reader",
    "api:runs:chunks",
    "api:runs:chunk-claim",
    "api:runs:chunk-heartbeat",
    "api:runs:chunk-report",
}
"""Authenticated by the runner credential only: 401 without it (a user's DRF token included)."""


def walk(
    patterns: list[Any], prefix: str = "", namespace: str = ""
) -> Iterator[tuple[str, str | None, Callable[..., Any]]]:
    """Yield (route, namespaced name or None, view callback) of every URL pattern."""
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = namespace + (f"{pattern.namespace}:" if pattern.namespace else "")
            yield from walk(pattern.url_patterns, prefix + str(pattern.pattern), inner)
        elif isinstance(pattern, URLPattern):
            name = namespace + pattern.name if pattern.name else None
            yield prefix + str(pattern.pattern), name, pattern.callback


def concrete(route: str, values: dict[str, str]) -> str:
    """The route with each `<conv:name>` / `(?P<name>...)` replaced by `values[name]`."""
    path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: values[m.group(1)], route)
    path = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: values[m.group(1)], path)
    return "/" + path.replace("^", "").replace("$", "")


def methods(callback: Callable[..., Any]) -> list[str]:
    view_class = getattr(callback, "view_class", None)
    if view_class is not None and issubclass(view_class, APIView):
        return [
            m
            for m in view_class.http_method_names
            if m not in ("options", "head") and hasattr(view_class, m)
        ]
    return ["get", "post"]


@pytest.fixture
def objects(tmp_path: Any) -> tuple[Connection, DataSource, EtlRun]:
    connection = connection_create(name="files", type="local", base_path=str(tmp_path))
    source = data_source_create(
        name="s", connection=connection, dest_table_name="t", file_format="csv"
    )
    run, _ = etl_run_create(data_source=source, trigger="api")
    return connection, source, run


def test_every_url_refuses_anonymous_and_non_staff_users(
    objects: tuple[Connection, DataSource, EtlRun],
) -> None:
    """Each URL and method answers as the module docstring lists, for each kind of caller."""
    connection, source, run = objects
    values = {
        "connection_id": str(connection.id),
        "source_id": str(source.id),
        "run_id": str(run.id),
        "run_uid": str(run.uid),
        "index": "0",
        "object_id": str(connection.id),
        "app_label": "ml_platform",
        "url": "ml_platform/nothing/",
        "uidb64": "MQ",
        "token": "set-password",
        "id": "1",
        "content_type_id": "1",
    }
    user = get_user_model().objects.create_user("viewer", password="pw", is_staff=False)
    anonymous = Client()
    session = Client()
    session.force_login(user)
    token = Client(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")

    checked: list[str] = []
    wrong: list[str] = []
    for route, name, callback in walk(get_resolver().url_patterns):
        if name in PUBLIC:
            continue
        url = concrete(route, values)
        view_class = getattr(callback, "view_class", None)
        for method in methods(callback):
            checked.append(f"{method.upper()} {url}")
            for who, client in [("anonymous", anonymous), ("session", session), ("token", token)]:
                response = getattr(client, method)(url)
                status = response.status_code
                location = response.get("Location", "")
                if view_class is not None and issubclass(view_class, RedirectView):
                    ok = status in (301, 302) and not response.content
                elif name in OWN_TOKEN:
                    ok = status == 401
                elif name in RUNNER:
                    ok = status == 401
                elif route.startswith("admin/"):
                    ok = status == 302 and location.startswith("/admin/login/?next=")
                elif name in ANY_LOGGED_IN:
                    ok = (
                        (status == 302 and location.startswith("/accounts/login/"))
                        if (who != "session")
                        else status in (200, 302, 405)
                    )
                elif route.startswith("api/"):
                    expected = {"anonymous": 401, "session": 403, "token": 403}[who]
                    ok = status == expected and (
                        who != "anonymous" or response["WWW-Authenticate"].startswith("Token")
                    )
                else:  # web pages and anything new
                    # a DRF token is not a login to Django's pages: that caller is anonymous
                    ok = status == 302 and location.startswith("/accounts/login/?next=")
                    if who == "session":
                        ok = status == 403
                if not ok:
                    wrong.append(f"{method.upper()} {url} as {who}: {status} {location}")

    assert not wrong, "\n".join(wrong)
    assert len(checked) >= 60, checked  # the walk found the API, pages and admin
    assert {
        f"GET /api/etl/runs/{run.id}/",
        f"POST /api/etl/sources/{source.id}/scheduler-webhook/",
        f"POST /etl/sources/{source.id}/run/",
        f"GET /admin/ml_platform/connection/{connection.id}/change/",
    } <= set(checked)
    assert (Connection.objects.count(), DataSource.objects.count(), EtlRun.objects.count()) == (
        1,
        1,
        1,
    )
