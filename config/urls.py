"""URLs: the Django admin, the REST API under `api/`, the web pages (wizard, sources) under
`etl/` and Django's login page under `accounts/`."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("ml_platform.api.urls")),
    path("etl/", include("ml_platform.web.urls")),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", RedirectView.as_view(pattern_name="web:source-list", permanent=False)),
    # login/logout links of the browsable API
    path("api-auth/", include("rest_framework.urls")),
]
