"""API routes under `api/`; the CRUD, run-now and webhook views are added by later issues."""

from django.urls import path

from ml_platform.api.views import HealthApi

app_name = "api"

urlpatterns = [
    path("health/", HealthApi.as_view(), name="health"),
]
