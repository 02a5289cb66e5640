"""Schema of the table a DuckDB load writes: created from the first batch, then given the new
columns and the widenings (`widened`) each later batch or native scan needs."""

from __future__ import annotations

from typing import Any

from etl.exceptions import SchemaChangeError
from etl.load.duckdb.insert import Write, quote, select_list
from etl.load.duckdb.types import widened
from etl.schema import first_source_file


def prepare(
    write: Write, columns: dict[str, str], probe: Any, scan: Any = None
) -> tuple[dict[str, str], dict[str, str]]:
    """Create `write.write_to` from `probe`'s columns (a batch, or a scan's columns) when it has
    none yet, else evolve it for them; return its columns and the casts of `probe`'s
    columns into them."""
    connection = write.connection
    connection.register("_etl_probe", probe)
    try:
        if not columns:
            connection.execute(
                f"CREATE TABLE {write.write_to} AS SELECT {select_list(probe.schema)} "
                "FROM _etl_probe LIMIT 0",
                write.params,
            )
            return write.columns(write.table), {}
        return columns, evolve(write, columns, probe, scan)
    finally:
        connection.unregister("_etl_probe")


def evolve(write: Write, columns: dict[str, str], batch: Any, scan: Any = None) -> dict[str, str]:
    """Add new columns and widen existing ones for `batch`'s schema (`widened`; `columns` is
    updated); return the columns to CAST to their destination type (narrower values into a
    wider column, text columns that are NULL in the first batch).

    Raises:
        SchemaChangeError: a column's type changes in a way no widening covers.
    """
    connection, write_to = write.connection, write.write_to
    incoming = dict(
        (row[0], row[1])
        for row in connection.execute(
            f"DESCRIBE SELECT {select_list(batch.schema)} FROM _etl_probe LIMIT 0", write.params
        ).fetchall()
    )
    cast_to = {}
    for name, data_type in incoming.items():
        if name not in columns:
            connection.execute(f"ALTER TABLE {write_to} ADD COLUMN {quote(name)} {data_type}")
            columns[name] = data_type
            continue
        existing = columns[name]
        if existing == data_type:
            continue
        if data_type == "VARCHAR" and only_nulls(connection, batch, name, scan):
            cast_to[name] = existing  # an empty text column; a value that does not
            continue  # convert fails the INSERT, so nothing is changed silently
        wider = widened(existing, data_type, to_string=write.request.allow_widen_to_string)
        if wider is None:
            file = scan.key if scan is not None else first_source_file(batch)
            raise SchemaChangeError(write.request.table, name, existing, data_type, file)
        if wider != existing:
            connection.execute(f"ALTER TABLE {write_to} ALTER {quote(name)} TYPE {wider}")
            columns[name] = wider
        if wider != data_type:
            cast_to[name] = wider  # e.g. INTEGER values into a DECIMAL or VARCHAR column
    return cast_to


def only_nulls(connection: Any, batch: Any, name: str, scan: Any) -> bool:
    """Return True when column `name` holds no value: in `batch`, or, for a native `scan`
    (whose `batch` is its columns without rows), in the file DuckDB reads."""
    if scan is None:
        return bool(batch.column(name).null_count == batch.num_rows)
    source = scan.sources.get(name)
    if source is None:
        return False  # a constant of every row
    rows = connection.execute(
        f"SELECT count({quote(source)}) FROM read_parquet(?)", [scan.path]
    ).fetchall()  # fetchone would leave the result open on the connection
    return bool(rows[0][0] == 0)
