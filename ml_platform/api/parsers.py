"""The API's request parsers: DRF's, bounded in size and nesting depth."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import exceptions, status
from rest_framework.parsers import JSONParser

BODY_TOO_LARGE = (
    "Request body is larger than {limit} bytes (DATA_UPLOAD_MAX_MEMORY_SIZE); send less data."
)
BODY_TOO_DEEP = "JSON parse error - the document is nested too deeply."


class RequestBodyTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "request_too_large"


def too_large_message() -> str:
    """The 413 message, naming the limit (bytes)."""
    return BODY_TOO_LARGE.format(limit=settings.DATA_UPLOAD_MAX_MEMORY_SIZE)


class ApiJSONParser(JSONParser):
    """DRF's JSON parser, bounded: a body over `DATA_UPLOAD_MAX_MEMORY_SIZE` bytes is 413 and a
    document nested deeper than Python's recursion limit is 400 (the standard `json` module
    raises `RecursionError` for it, which would be a 500)."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        request = (parser_context or {}).get("request")
        length = _content_length(request.META if request is not None else {})
        if limit is not None and length > limit:
            raise RequestBodyTooLarge(too_large_message())
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError(BODY_TOO_DEEP) from None


def _content_length(meta: Any) -> int:
    try:
        return int(meta.get("CONTENT_LENGTH") or 0)
    except (TypeError, ValueError):
        return 0
