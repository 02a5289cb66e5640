"""Steps every entity's update service shares (HackSoft `common/services.py` `model_update`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Model

FIELD_NOT_UPDATABLE = "This field cannot be updated."


def model_fields_apply(*, instance: Model, data: dict[str, Any], updatable: Sequence[str]) -> None:
    """Set the fields named in `data` on `instance`, without validating or saving.

    Args:
        instance: the row to change.
        data: field name -> new value; other fields keep their values.
        updatable: the field names `data` may hold.

    Raises:
        ValidationError: keyed by each field of `data` not in `updatable` (nothing is set).
    """
    unknown = sorted(set(data) - set(updatable))
    if unknown:
        raise ValidationError({field: FIELD_NOT_UPDATABLE for field in unknown})
    for field, value in data.items():
        setattr(instance, field, value)
