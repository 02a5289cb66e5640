"""URLs: the Django admin and the REST API under `api/`."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("ml_platform.api.urls")),
    # login/logout links of the browsable API
    path("api-auth/", include("rest_framework.urls")),
]
