"""One owner per destination table (shared/DESIGN.md §5): a (destination type + DuckDB file or
BigQuery project, dataset, table) belongs to one data source, and so do its
`<table>__rejected` side table and the dataset's `_etl_loads` load log entries for it.

The rule is checked by `data_source_validate` (so every create and update, from the API, the
wizard or a command, is refused with a `dest_table_name` error naming the owner) and reported
for rows that already break it by `destination_clashes_find` (the `etl_destination_owners`
command and the `ml_platform.E001` database check).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Q

from ml_platform.models import DataSource

REJECTED_SUFFIX = "__rejected"
"""Suffix of the quarantine side table (`etl.load.loadlog.REJECTED_SUFFIX`)."""
RESERVED_PREFIX = "_etl_"
"""Tables of the engine itself (`_etl_loads`, staging tables) start with this."""

DESTINATION_TABLE_OWNED = (
    "Destination table {table} in {where} belongs to data source {owner!r} (id {owner_id}); "
    "choose another table name or dataset."
)
DESTINATION_TABLE_REJECTS_OWNED = (
    "Destination table {table} in {where} is the rejected-rows table of data source "
    "{owner!r} (id {owner_id}) or holds this source's rejected rows under its name; choose "
    "another table name or dataset."
)
DESTINATION_TABLE_RESERVED = (
    "Table names starting with `_etl_` are reserved for ETL Runner's own tables (load log, "
    "staging)."
)


@dataclass(frozen=True)
class DestinationKey:
    """Where a data source's table lives, normalized for comparison: `location` is the
    resolved DuckDB file path or the BigQuery project; names compare case-insensitively
    (DuckDB identifiers are case-insensitive)."""

    type: str
    location: str
    dataset: str
    table: str

    def describe(self) -> str:
        kind = "DuckDB file" if self.type == "duckdb" else "BigQuery project"
        return f"{self.dataset} of {kind} {self.location}"


def destination_key(*, data_source: DataSource) -> DestinationKey:
    """Return the normalized destination of `data_source` (its `destination` block with the
    defaults of `job_config_data`: DuckDB at `settings.ETL_DEFAULT_DUCKDB_PATH`, relative
    paths under `settings.VAR_DIR`, dataset `raw_data`)."""
    destination: dict[str, Any] = {"type": "duckdb", **(data_source.destination or {})}
    kind = str(destination.get("type") or "duckdb")
    dataset = str(destination.get("dataset") or "raw_data").casefold()
    if kind == "duckdb":
        path = Path(str(destination.get("path") or settings.ETL_DEFAULT_DUCKDB_PATH))
        path = path if path.is_absolute() else Path(settings.VAR_DIR) / path
        location = str(path.resolve())
    else:
        location = str(destination.get("project") or "").casefold()
    return DestinationKey(kind, location, dataset, data_source.dest_table_name.casefold())


def _tables_of(table: str) -> set[str]:
    return {table, table + REJECTED_SUFFIX}


def _candidate_names(table: str) -> set[str]:
    """Other sources' `dest_table_name`s that may share a table with `table`."""
    names = _tables_of(table)
    if table.endswith(REJECTED_SUFFIX):
        names.add(table.removesuffix(REJECTED_SUFFIX))
    return names


def destination_owner_find(*, data_source: DataSource) -> tuple[DataSource, bool] | None:
    """Return `(owner, via_rejects)`: another data source whose table or `__rejected` table is
    one of `data_source`'s (`via_rejects` when only the side tables meet), or None.

    `data_source` may be unsaved (a draft) or an existing row being changed.
    """
    key = destination_key(data_source=data_source)
    if not key.table:
        return None
    names = Q()
    for name in _candidate_names(key.table):
        names |= Q(dest_table_name__iexact=name)
    others = DataSource.objects.exclude(pk=data_source.pk) if data_source.pk else DataSource.objects
    for other in others.filter(names).order_by("pk"):
        other_key = destination_key(data_source=other)
        if (other_key.type, other_key.location, other_key.dataset) != (
            key.type,
            key.location,
            key.dataset,
        ):
            continue
        if other_key.table == key.table:
            return other, False
        if _tables_of(other_key.table) & _tables_of(key.table):
            return other, True
    return None


def destination_owner_check(*, data_source: DataSource) -> None:
    """Refuse a destination table another data source owns, or a reserved `_etl_` name.

    Raises:
        ValidationError: `{"dest_table_name": [message naming the owner and its id]}`.
    """
    table = data_source.dest_table_name or ""
    if table.casefold().startswith(RESERVED_PREFIX):
        raise ValidationError({"dest_table_name": DESTINATION_TABLE_RESERVED})
    _destination_lock(destination_key(data_source=data_source))
    found = destination_owner_find(data_source=data_source)
    if found is None:
        return
    owner, via_rejects = found
    template = DESTINATION_TABLE_REJECTS_OWNED if via_rejects else DESTINATION_TABLE_OWNED
    raise ValidationError(
        {
            "dest_table_name": template.format(
                table=table,
                where=destination_key(data_source=data_source).describe(),
                owner=owner.name,
                owner_id=owner.pk,
            )
        }
    )


def _destination_lock(key: DestinationKey) -> None:
    """On PostgreSQL, serialize checks of one destination table until the transaction ends, so
    two concurrent creates cannot both find it free (SQLite writes are serialized already)."""
    if connection.vendor != "postgresql" or not connection.in_atomic_block:
        return
    table = key.table.removesuffix(REJECTED_SUFFIX)
    digest = hashlib.blake2b(
        f"{key.type}|{key.location}|{key.dataset}|{table}".encode(), digest_size=8
    ).digest()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s)", [int.from_bytes(digest, "big", signed=True)]
        )


def destination_table_name_free(*, data_source: DataSource, base: str) -> str:
    """Return `base`, or `base_2`, `base_3`, ... : the first name no other data source owns at
    `data_source`'s destination (the wizard's default destination table)."""
    base = base or "table"
    candidate, number = base, 1
    original = data_source.dest_table_name
    try:
        while True:
            data_source.dest_table_name = candidate
            if destination_owner_find(data_source=data_source) is None:
                return candidate
            number += 1
            candidate = f"{base}_{number}"
    finally:
        data_source.dest_table_name = original


def destination_clashes_find() -> list[tuple[DataSource, DataSource]]:
    """Return every pair `(first, second)` of existing data sources (by id) that share a
    destination table or its `__rejected` table; nothing is changed."""
    clashes = []
    for source in DataSource.objects.order_by("pk"):
        found = destination_owner_find(data_source=source)
        if found is not None and found[0].pk < source.pk:
            clashes.append((found[0], source))
    return clashes
