"""What every resource of the API shares: strict input, paginated and ordered lists, the error
body in the OpenAPI document.

- Input serializers derive from `StrictInputSerializer`: a field the operation does not take
  answers 400 naming it and the closest valid name (`shedule_cron` -> `schedule_cron`), instead
  of being ignored.
- Lists answer `{"count", "next", "previous", "results"}` with `?limit=` (default 50, at most
  500) and `?offset=` (DRF's `LimitOffsetPagination`), and take `?ordering=` (a field name, `-`
  for descending).
- Every operation documents the error body `{"message": str, "extra": {...}}`
  (ml_platform/api/exception_handlers.py) for 400, 401, 403, 404 and 503.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping, Sequence
from typing import Any, ClassVar

from django.db.models import Model, QuerySet
from rest_framework import serializers
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.validators import UniqueValidator
from rest_framework.views import APIView

UNKNOWN_FIELD = "Unknown field `{name}`."
UNKNOWN_FIELD_CLOSEST = "Unknown field `{name}`; did you mean `{closest}`?"
UNKNOWN_ORDERING = "Order by one of: {allowed} (prefix `-` for descending)."


class StrictInputSerializer(serializers.Serializer):
    """Refuses fields it does not declare (400, each named, with the closest declared name)."""

    NESTED_KEYS: ClassVar[Mapping[str, Collection[str]]] = {}
    """Keys an object field holds (`{"credentials": {"password", ...}}`): a top-level field
    named like one of them is answered with `credentials.password`, where it belongs."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            known = [name for name, field in self.fields.items() if not field.read_only]
            unknown = sorted(set(data) - set(known))
            if unknown:
                nested = {
                    key: f"{field}.{key}"
                    for field, keys in self.NESTED_KEYS.items()
                    if field in known
                    for key in keys
                }
                raise serializers.ValidationError(
                    {name: [unknown_field_message(name, known, nested)] for name in unknown}
                )
        return super().to_internal_value(data)


def model_serializer_fields(
    model: type[Model], names: Sequence[str], *, required: Sequence[str] = ()
) -> dict[str, serializers.Field]:
    """Return DRF fields for `model`'s fields `names`, built from the model as DRF's
    `ModelSerializer` builds them (type, choices, max length, min/max, label, help text): the
    model is the one definition of a field, the API derives it. Only `required` are required
    (the service applies the model's defaults); uniqueness is left to the service's
    `full_clean`, which knows the row being updated.
    """
    extra = {name: {"required": name in required} for name in names}
    meta = type("Meta", (), {"model": model, "fields": list(names), "extra_kwargs": extra})
    builder = type("Builder", (serializers.ModelSerializer,), {"Meta": meta})
    fields = builder().get_fields()
    for field in fields.values():
        field.validators = [v for v in field.validators if not isinstance(v, UniqueValidator)]
    return fields


def model_input_serializer(
    ref_name: str,
    model: type[Model],
    names: Sequence[str],
    *,
    required: Sequence[str] = (),
    **declared: serializers.Field,
) -> type[StrictInputSerializer]:
    """Return a strict input serializer (OpenAPI component `ref_name`) of `model`'s fields
    `names` (`model_serializer_fields`), with the `declared` fields added or replacing them
    (e.g. a JSON field taken as a list of strings, a write-only secret)."""
    fields = {**model_serializer_fields(model, names, required=required), **declared}
    attrs: dict[str, Any] = {**fields, "Meta": type("Meta", (), {"ref_name": ref_name})}
    attrs["__module__"] = __name__
    return type(ref_name, (StrictInputSerializer,), attrs)


def unknown_field_message(
    name: str, known: Sequence[str], nested: Mapping[str, str] | None = None
) -> str:
    """Return the message for an unknown field `name`: the nested path when `name` is a key of
    an object field (`nested`: key -> `field.key`), else the closest of `known`."""
    if nested and name in nested:
        return UNKNOWN_FIELD_CLOSEST.format(name=name, closest=nested[name])
    closest = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if closest:
        return UNKNOWN_FIELD_CLOSEST.format(name=name, closest=closest[0])
    return UNKNOWN_FIELD.format(name=name)


class ListPagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 500


class ListFilterSerializer(StrictInputSerializer):
    """`limit`, `offset` and `ordering` of every list; lists add their own filters."""

    ORDERING: tuple[str, ...] = ()
    """Fields a list may be ordered by (subclasses set it)."""

    limit = serializers.IntegerField(
        required=False, min_value=1, max_value=ListPagination.max_limit
    )
    offset = serializers.IntegerField(required=False, min_value=0)
    ordering = serializers.CharField(required=False)

    def validate_ordering(self, value: str) -> str:
        if value.removeprefix("-") not in self.ORDERING:
            raise serializers.ValidationError(
                UNKNOWN_ORDERING.format(allowed=", ".join(self.ORDERING))
            )
        return value


def paginated_response(
    *,
    request: Request,
    view: APIView,
    queryset: QuerySet[Any],
    serializer_class: type[serializers.Serializer],
    ordering: str | None = None,
) -> Response:
    """Return one page of `queryset` (ordered by `ordering` when given, the id breaking ties) as
    `{"count", "next", "previous", "results"}`."""
    if ordering:
        queryset = queryset.order_by(ordering, "-id" if ordering.startswith("-") else "id")
    paginator = ListPagination()
    page = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(serializer_class(page, many=True).data)


def paginated_schema(serializer_class: type[serializers.Serializer], name: str) -> Any:
    """Return the OpenAPI shape of a page of `serializer_class` items (component `name`)."""
    return serializers.Serializer.__class__(
        name,
        (serializers.Serializer,),
        {
            "count": serializers.IntegerField(help_text="items matching the filters"),
            "next": serializers.URLField(allow_null=True, help_text="next page, or null"),
            "previous": serializers.URLField(allow_null=True, help_text="previous page, or null"),
            "results": serializer_class(many=True),
            "Meta": type("Meta", (), {"ref_name": name}),
            "__module__": __name__,
        },
    )


class ErrorSerializer(serializers.Serializer):
    """The body of every error answer."""

    message = serializers.CharField(help_text="what went wrong, for a person")
    extra = serializers.DictField(
        help_text="details: `fields` maps each invalid field to its messages (400); "
        "`retry_after_s` (503)"
    )

    class Meta:
        ref_name = "Error"


def error_responses_hook(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: give every operation the `Error` body for 400, 401,
    403, 404 and 503 (413 for bodies over `DATA_UPLOAD_MAX_MEMORY_SIZE` too), so clients and
    schemathesis know the shape of every answer."""
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components["Error"] = {
        "type": "object",
        "properties": {
            "message": {"type": "string"},
            "extra": {"type": "object", "additionalProperties": {}},
        },
        "required": ["message", "extra"],
    }
    body = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    descriptions = {
        "400": "Invalid input: `extra.fields` names each field",
        "401": "Not authenticated",
        "403": "Not allowed (staff only)",
        "404": "No such object",
        "413": "Request body too large",
        "503": "A service this needs is unavailable; retry after `Retry-After` seconds",
    }
    for path in result.get("paths", {}).values():
        for operation in path.values():
            responses = operation.setdefault("responses", {})
            for code, description in descriptions.items():
                given = responses.setdefault(code, {"description": description})
                given["content"] = body  # an operation's own description of the case is kept
    return result
