from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.http import HttpResponseBase
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularSwaggerView
from rest_framework.exceptions import AuthenticationFailed, NotAuthenticated
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView


class HealthApi(APIView):
    """Answer 200 `{"status": "ok"}` without authentication (load balancer health check)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        responses={200: {"type": "object", "properties": {"status": {"type": "string"}}}}
    )
    def get(self, request: Request) -> Response:
        return Response({"status": "ok"})


class ApiDocsView(SpectacularSwaggerView):
    """Swagger UI for staff users; a browser that is not logged in (it asks for HTML) is sent
    to the login page and back, instead of the API's JSON 401."""

    def handle_exception(self, exc: Exception) -> Any:
        wants_html = "text/html" in self.request.META.get("HTTP_ACCEPT", "")
        if isinstance(exc, NotAuthenticated | AuthenticationFailed) and wants_html:
            response: HttpResponseBase = redirect_to_login(self.request.get_full_path())
            return response
        return super().handle_exception(exc)
