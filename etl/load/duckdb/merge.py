"""Each key's latest row in the DuckDB loader: a merge's rows merged into the table, and a
merge's full refresh reduced to one row per key before its swap.

The latest row of a key is the one with the greatest `MergeKey.order_by` values (NULL lowest);
two staged rows with the same key and the same `order_by` values fail the load
(`PrimaryKeyError`), since neither is the latest.
"""

from __future__ import annotations

from typing import Any

from etl.exceptions import PrimaryKeyError
from etl.load.base import MergeKey, duplicate_reason
from etl.load.duckdb.insert import Write, quote


def merge_into(write: Write, key: MergeKey) -> None:
    """Replace the rows of the destination table whose key is in the staging table with each
    key's latest staged row, insert the new keys, and drop the staging table; inside the run's
    transaction.

    A first run creates the table from the staged rows. The table's columns are added and
    widened to the staging's (which started as a copy of the table's columns and was evolved
    batch by batch as an append is); a table column the source no longer has is NULL in the
    replaced rows, as in appended ones.

    Raises:
        PrimaryKeyError: two staged rows share the key and the `order_by` values.
    """
    connection, table = write.connection, write.request.table
    source, target = write.write_to, write.target
    staged = write.columns(write.table)
    if not staged:
        return  # no batch at all (no file matched): nothing to merge, no staging table
    check_keys(connection, table, source, key)
    latest = f"SELECT * FROM {source} QUALIFY {_is_latest(key)}"
    existing = write.columns(table)
    if not existing:
        connection.execute(f"CREATE TABLE {target} AS {latest}")
    else:
        for name, data_type in staged.items():
            if name not in existing:
                connection.execute(f"ALTER TABLE {target} ADD COLUMN {quote(name)} {data_type}")
            elif existing[name] != data_type:
                connection.execute(f"ALTER TABLE {target} ALTER {quote(name)} TYPE {data_type}")
        match = " AND ".join(f"{target}.{quote(n)} = {source}.{quote(n)}" for n in key.primary_key)
        connection.execute(f"DELETE FROM {target} USING {source} WHERE {match}")
        connection.execute(f"INSERT INTO {target} BY NAME {latest}")
    connection.execute(f"DROP TABLE {source}")


def keep_latest(write: Write, key: MergeKey) -> None:
    """Delete from the staging table every row but each key's latest: a merge's full refresh
    swaps in one row per key, as merging the same rows would leave.

    Raises:
        PrimaryKeyError: two staged rows share the key and the `order_by` values.
    """
    staging = write.write_to
    check_keys(write.connection, write.request.table, staging, key)
    write.connection.execute(
        f"DELETE FROM {staging} WHERE rowid NOT IN (SELECT rowid FROM {staging} "
        f"QUALIFY {_is_latest(key)})"
    )


def check_keys(connection: Any, table: str, staging: str, key: MergeKey) -> None:
    """Raise `PrimaryKeyError` when two rows of `staging` (quoted, qualified) share the key and
    the `order_by` values."""
    both = ", ".join(quote(name) for name in [*key.primary_key, *key.order_by])
    duplicate = connection.execute(
        f"SELECT {both}, count(*) FROM {staging} GROUP BY {both} HAVING count(*) > 1 LIMIT 1"
    ).fetchone()
    if duplicate is not None:
        raise PrimaryKeyError(table, key.primary_key, duplicate_reason(key, duplicate))


def _is_latest(key: MergeKey) -> str:
    """Return the QUALIFY condition true for each key's latest row."""
    keys = ", ".join(quote(name) for name in key.primary_key)
    order = ", ".join(f"{quote(name)} DESC NULLS LAST" for name in key.order_by)
    return f"row_number() OVER (PARTITION BY {keys} ORDER BY {order}) = 1"
