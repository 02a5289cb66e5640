"""Swagger UI at `/api/docs/` (issue 16): served by this app with its own assets (no CDN, so it
works offline), for staff users only, on the same OpenAPI document as `/api/schema/`."""

from __future__ import annotations

import re

import pytest
from django.contrib.staticfiles import finders
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def test_swagger_ui_serves_the_schema_with_local_assets(staff_client: APIClient) -> None:
    """The page loads Swagger UI's script and stylesheet from this app's static files (each
    found by the staticfiles finders) and points the UI at `/api/schema/`."""
    response = staff_client.get("/api/docs/")

    assert response.status_code == 200
    page = response.content.decode()
    assets = re.findall(r'(?:src|href)="/static/(drf_spectacular_sidecar/[^"]+)"', page)
    assert {asset.rsplit("/", 1)[1] for asset in assets} >= {
        "swagger-ui-bundle.js",
        "swagger-ui.css",
    }
    assert all(finders.find(asset) for asset in assets)
    assert "/api/schema/" in page
    assert "cdn.jsdelivr.net" not in page


def test_swagger_ui_is_for_staff_only(user_client: APIClient) -> None:
    """A logged-in user who is not staff is refused, anonymous callers too."""
    assert user_client.get("/api/docs/").status_code == 403
    assert APIClient().get("/api/docs/").status_code in (401, 403)


def test_swagger_ui_sends_a_browser_that_is_not_logged_in_to_the_login_page() -> None:
    """A browser (asking for HTML) gets a redirect to the login page and back to the docs, not
    the API's raw JSON 401; a script (curl's `*/*`) still gets the 401 JSON body."""
    browser = APIClient().get("/api/docs/", HTTP_ACCEPT="text/html,application/xhtml+xml,*/*;q=0.8")
    assert browser.status_code == 302
    assert browser["Location"] == "/accounts/login/?next=/api/docs/"

    script = APIClient().get("/api/docs/", HTTP_ACCEPT="*/*")  # curl's default
    assert script.status_code == 401
    assert script["Content-Type"] == "application/json"
