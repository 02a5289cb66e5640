"""The single DRF `EXCEPTION_HANDLER`: every API error is `{"message": str, "extra": {...}}`.

Django `ValidationError` (services) and DRF validation errors become 400 with the offending
fields in `extra.fields`; `ApplicationError` is 400; a missing row (`DoesNotExist`, `Http404`)
is 404; DRF's own errors keep their status (401 keeps its `WWW-Authenticate`).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ObjectDoesNotExist, PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler

from ml_platform.exceptions import ApplicationError

VALIDATION_FAILED = "Validation error"
NOT_FOUND = "Not found."


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApplicationError):
        return Response({"message": exc.message, "extra": exc.extra}, status=400)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(as_serializer_error(exc))
    elif isinstance(exc, ObjectDoesNotExist | Http404):
        exc = exceptions.NotFound(NOT_FOUND)
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    response = exception_handler(exc, context)
    if response is None:
        return None  # an unexpected error: Django's 500 handling (and logging) applies
    if isinstance(exc, exceptions.ValidationError):
        fields = (
            response.data if isinstance(response.data, dict) else {NON_FIELD_ERRORS: response.data}
        )
        response.data = {"message": VALIDATION_FAILED, "extra": {"fields": fields}}
    else:
        detail = response.data.get("detail", "") if isinstance(response.data, dict) else ""
        response.data = {"message": str(detail), "extra": {}}
    return response
