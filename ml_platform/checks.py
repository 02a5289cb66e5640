"""System checks of the control plane's data (`manage.py check --database default`)."""

from __future__ import annotations

from typing import Any

from django.core import checks
from django.db.utils import DatabaseError

DESTINATION_CLASH = (
    "Data sources {first!r} (id {first_id}) and {second!r} (id {second_id}) load the same "
    "destination table {table}."
)
DESTINATION_CLASH_HINT = (
    "Give one of them another dest_table_name or dataset (nothing was changed); "
    "`manage.py etl_destination_owners` lists every clash."
)


@checks.register(checks.Tags.database)
def destination_owners_check(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Warn (`ml_platform.W001`) about each pair of existing data sources sharing a destination
    table or its `__rejected` table; runs only with `--database` (it reads rows)."""
    from ml_platform.services.ownership import destination_clashes_find

    try:
        clashes = destination_clashes_find()
    except DatabaseError:
        return []  # not migrated yet: nothing to report
    return [
        checks.Warning(
            DESTINATION_CLASH.format(
                first=first.name,
                first_id=first.pk,
                second=second.name,
                second_id=second.pk,
                table=second.dest_table_name,
            ),
            hint=DESTINATION_CLASH_HINT,
            obj=second,
            id="ml_platform.W001",
        )
        for first, second in clashes
    ]
