"""Every API error is `{"message": str, "extra": {...}}`, whoever raised it.

`api_exception_handler` is the single DRF `EXCEPTION_HANDLER`: Django `ValidationError`
(services) and DRF validation errors become 400 with the offending fields in `extra.fields`;
`ApplicationError` has its own `status` (400 unless the error says otherwise, e.g. 409 for a
run that is no longer active) and `code` (logged); a missing row (`DoesNotExist`, `Http404`) is 404; an oversized body
(`RequestDataTooBig`, over `DATA_UPLOAD_MAX_MEMORY_SIZE` bytes) is 413; a broker that cannot
take a run (`RunEnqueueUnavailableError`) is 503 with `Retry-After`; DRF's own errors keep their
status (401 keeps its `WWW-Authenticate`).

`ml_platform.api.middleware.ApiJsonErrorsMiddleware` covers what never reaches a DRF view under `/api/`: unknown URLs
(404), Django's own 400/413 and any unexpected error (500), answered in the same JSON shape
instead of Django's HTML pages.
"""

from __future__ import annotations

from typing import Any

import structlog
from django.core.exceptions import (
    NON_FIELD_ERRORS,
    ObjectDoesNotExist,
    PermissionDenied,
    RequestDataTooBig,
    SuspiciousOperation,
)
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler

from ml_platform.api.parsers import RequestBodyTooLarge, too_large_message
from ml_platform.exceptions import ApplicationError
from ml_platform.services.runs import RunEnqueueUnavailableError

logger = structlog.get_logger(__name__)

VALIDATION_FAILED = "Validation error"
NOT_FOUND = "Not found."
BAD_REQUEST = "Bad request: {reason}"
SERVER_ERROR = "Internal server error; the error was logged."
API_PREFIX = "/api/"


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Render `exc` as `{"message", "extra"}` with its status; None (Django's 500) only for an
    error no rule covers, which `ApiJsonErrorsMiddleware` then answers as JSON."""
    if isinstance(exc, ApplicationError):
        logger.info("api.application_error", code=exc.code, status=exc.status)
        return Response({"message": exc.message, "extra": exc.extra}, status=exc.status)
    if isinstance(exc, RunEnqueueUnavailableError):
        return Response(
            {"message": exc.message, "extra": {"retry_after_s": exc.retry_after_s}},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(exc.retry_after_s)},
        )
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(as_serializer_error(exc))
    elif isinstance(exc, ObjectDoesNotExist | Http404):
        exc = exceptions.NotFound(NOT_FOUND)
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        exc = RequestBodyTooLarge(too_large_message())
    elif isinstance(exc, SuspiciousOperation):
        exc = exceptions.ParseError(BAD_REQUEST.format(reason=exc))

    response = exception_handler(exc, context)
    if response is None:
        return None  # an unexpected error: logged and answered by the middleware
    if isinstance(exc, exceptions.ValidationError):
        fields = (
            response.data if isinstance(response.data, dict) else {NON_FIELD_ERRORS: response.data}
        )
        response.data = {"message": VALIDATION_FAILED, "extra": {"fields": fields}}
    else:
        detail = response.data.get("detail", "") if isinstance(response.data, dict) else ""
        response.data = {"message": str(detail), "extra": {}}
    return response
