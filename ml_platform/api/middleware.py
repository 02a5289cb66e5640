"""Under `/api/`, errors Django renders itself are answered in the API's JSON shape."""

from __future__ import annotations

from collections.abc import Callable

import structlog
from django.core.exceptions import (
    ObjectDoesNotExist,
    PermissionDenied,
    RequestDataTooBig,
    SuspiciousOperation,
)
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from rest_framework import exceptions

from ml_platform.api.parsers import too_large_message

logger = structlog.get_logger(__name__)

NOT_FOUND = "Not found."
BAD_REQUEST = "Bad request: {reason}"
SERVER_ERROR = "Internal server error; the error was logged."
API_PREFIX = "/api/"


class ApiJsonErrorsMiddleware:
    """Under `/api/`, answer errors Django renders itself (unknown URL, 405 of a non-DRF view,
    oversized or suspicious requests, uncaught exceptions) as `{"message", "extra"}` JSON."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            request.path.startswith(API_PREFIX)
            and response.status_code >= 400
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            return _json_error(response.status_code, response.reason_phrase, response)
        return response

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        if not request.path.startswith(API_PREFIX):
            return None
        if isinstance(exc, Http404 | ObjectDoesNotExist):
            return _json_error(404, NOT_FOUND)
        if isinstance(exc, RequestDataTooBig):
            return _json_error(413, too_large_message())
        if isinstance(exc, SuspiciousOperation):
            return _json_error(400, BAD_REQUEST.format(reason=exc))
        if isinstance(exc, PermissionDenied):
            return _json_error(403, str(exceptions.PermissionDenied.default_detail))
        logger.exception("api.unhandled_error", path=request.path, error_class=type(exc).__name__)
        return _json_error(500, SERVER_ERROR)


def _json_error(
    status_code: int, message: str, original: HttpResponse | None = None
) -> HttpResponse:
    response = JsonResponse({"message": message, "extra": {}}, status=status_code)
    if original is not None:
        for header in ("WWW-Authenticate", "Allow", "Retry-After"):
            if original.has_header(header):
                response[header] = original[header]
    return response
