from drf_spectacular.utils import extend_schema
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
