"""Staged Parquet parts of a BigQuery load: value checks BigQuery would reject a load for,
lineage columns, alignment to the staging schema, and the part writer (one load job per part)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from etl.exceptions import (
    BadInputError,
    UnrepresentableValueError,
)
from etl.load.base import (
    LOADED_AT_COLUMN,
    RUN_ID_COLUMN,
)
from etl.load.bigquery.types import loadable
from etl.schema import SOURCE_FILE_COLUMN

PART_ROWS = 1_000_000
"""Rows per Parquet file sent in one load job (each part is written to a temporary file)."""


NULL_ELEMENT = (
    "row {row} holds an array with a NULL element, which a BigQuery ARRAY cannot hold "
    "(https://cloud.google.com/bigquery/docs/reference/standard-sql/data-types#array_nulls)"
)


OUT_OF_RANGE = (
    "row {row} holds {value}, outside BigQuery's {kind} range 0001-01-01 to 9999-12-31 "
    "(https://cloud.google.com/bigquery/docs/reference/standard-sql/data-types)"
)


_FIRST = dt.datetime(1, 1, 1)


_LAST = dt.datetime(9999, 12, 31, 23, 59, 59, 999999)


def check_bigquery_values(batch: pa.RecordBatch, run_rows: int, file_rows: dict[str, int]) -> None:
    """Fail on the first value BigQuery cannot hold and would reject the load for: a list with
    a NULL element (dropping it would change the value), a date or timestamp outside years
    1..9999 (Arrow and DuckDB hold them). Count the batch's rows into `file_rows` (source
    file -> rows seen) when it passes.

    Args:
        batch: one batch as extracted (a file source's batch comes from one file and carries
            `_etl_source_file`).
        run_rows: rows of the run in earlier batches (the row number of other sources).
        file_rows: rows of each source file in earlier batches.

    Raises:
        BadInputError: names the column, the row (from 1, within its file for file sources,
            else within the run) and the file.
    """
    names = batch.schema.names
    source = batch.column(SOURCE_FILE_COLUMN) if SOURCE_FILE_COLUMN in names else None
    file = source[0].as_py() if source is not None and batch.num_rows else None
    before = file_rows.get(file, 0) if file is not None else run_rows
    for field, column in zip(batch.schema, batch.columns, strict=True):
        kind = field.type
        if pa.types.is_list(kind) or pa.types.is_large_list(kind):
            values = pc.list_flatten(column)
            if values.null_count:
                first = pc.index(pc.is_null(values), True).as_py()
                index = pc.list_parent_indices(column)[first].as_py()
                raise BadInputError(
                    NULL_ELEMENT.format(row=before + index + 1), file=file, column=field.name
                )
        elif pa.types.is_timestamp(kind) or pa.types.is_date(kind):
            is_date = pa.types.is_date(kind)
            zone = dt.UTC if not is_date and kind.tz else None
            low, high = (
                pa.scalar(bound.date() if is_date else bound.replace(tzinfo=zone), kind)
                for bound in (_FIRST, _LAST)
            )
            outside = pc.or_(pc.less(column, low), pc.greater(column, high))
            index = pc.index(outside, True).as_py()
            if index >= 0:
                name = "DATE" if is_date else "TIMESTAMP" if zone else "DATETIME"
                text = pc.cast(column.slice(index, 1), pa.string())[0].as_py()
                raise BadInputError(
                    OUT_OF_RANGE.format(row=before + index + 1, value=text, kind=name),
                    file=file,
                    column=field.name,
                )
    if file is not None:
        file_rows[file] = before + batch.num_rows


NULL_LIST_WARNING = (
    "column `{column}`: {count} NULL {arrays} loaded as [] (a BigQuery ARRAY cannot be NULL; "
    "on_unrepresentable: nearest)"
)
"""The run warning of a list (or map) column, or nested list field (`o.tags`), some of whose
values are NULL: a REPEATED field holds no NULL, a NULL array is read as `[]`
(https://cloud.google.com/bigquery/docs/reference/standard-sql/data-types#array_nulls)."""


def count_null_lists(
    batch: pa.RecordBatch, counts: dict[str, int], table: str, on_unrepresentable: str
) -> None:
    """Add to `counts` (column path -> NULL arrays) the NULL lists and maps of `batch`, at any
    depth where their parent holds a value (`o.tags`, `items[].tags`): BigQuery loads each as
    `[]` (`on_unrepresentable: nearest`, NULL_LIST_WARNING).

    Raises:
        UnrepresentableValueError: such a value under `on_unrepresentable: fail` (names the
            table and the column path).
    """
    found: dict[str, int] = {}
    for field, column in zip(batch.schema, batch.columns, strict=True):
        _null_lists(column, field.name, found)
    if found and on_unrepresentable == "fail":
        path = next(iter(found))
        raise UnrepresentableValueError(table, path, "NULL", "BigQuery", nearest="as []")
    for path, count in found.items():
        counts[path] = counts.get(path, 0) + count


def _null_lists(array: pa.Array, path: str, counts: dict[str, int]) -> None:
    kind = array.type
    if pa.types.is_map(kind):
        if array.null_count:
            counts[path] = counts.get(path, 0) + array.null_count
        _null_lists(array.items, f"{path}[].value", counts)
    elif pa.types.is_list(kind) or pa.types.is_large_list(kind):
        if array.null_count:
            counts[path] = counts.get(path, 0) + array.null_count
        _null_lists(array.flatten(), f"{path}[]", counts)
    elif pa.types.is_struct(kind):
        if array.null_count:
            array = array.filter(array.is_valid())
        for index, child in enumerate(kind):
            _null_lists(array.field(index), f"{path}.{child.name}", counts)


def null_list_warnings(counts: dict[str, int]) -> list[str]:
    """Return one NULL_LIST_WARNING per column path of `counts`, in the order first seen."""
    return [
        NULL_LIST_WARNING.format(
            column=path, count=count, arrays="array" if count == 1 else "arrays"
        )
        for path, count in counts.items()
    ]


def with_metadata(batch: pa.RecordBatch, run_id: str, loaded_at: dt.datetime) -> pa.RecordBatch:
    arrays, fields = [], []
    for field, array in zip(batch.schema, batch.columns, strict=True):
        array, field = loadable(array, field)
        arrays.append(array)
        fields.append(field)
    n = batch.num_rows
    arrays += [
        pa.array([run_id] * n, pa.string()),
        pa.array([loaded_at] * n, pa.timestamp("us", tz="UTC")),
    ]
    fields += [
        pa.field(RUN_ID_COLUMN, pa.string()),
        pa.field(LOADED_AT_COLUMN, pa.timestamp("us", tz="UTC")),
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))


def align(batch: pa.RecordBatch, columns: dict, arrow_types: dict[str, pa.DataType]) -> pa.Table:
    """Return `batch` with every staging column, in staging order (missing ones NULL)."""
    table = pa.Table.from_batches([batch])
    arrays = [
        table.column(name)
        if name in batch.schema.names
        else pa.nulls(batch.num_rows, type=arrow_types[name])
        for name in columns
    ]
    return pa.Table.from_arrays(arrays, names=list(columns))


class PartWriter:
    """Writes batches into Parquet files of up to PART_ROWS rows; each full file is loaded."""

    def __init__(self, folder: Path, load: Any) -> None:
        self.folder, self.load = folder, load
        self.writer: pq.ParquetWriter | None = None
        self.path: Path | None = None
        self.rows = 0
        self.number = 0
        self.rows_loaded = 0  # rows of the run in loaded parts
        self.files_loaded: dict[str, int] = {}  # source file -> its rows in loaded parts
        self._part_files: dict[str, int] = {}

    def write(self, table: pa.Table) -> None:
        # another column type (int32 in one source file, int64 in the next) starts a new part:
        # casting to the part's schema would narrow; only nullability/metadata are cast below
        if self.writer is not None and [(f.name, f.type) for f in self.writer.schema] != [
            (f.name, f.type) for f in table.schema
        ]:
            self.flush()
        if self.writer is None:
            self.number += 1
            self.path = self.folder / f"part{self.number:05d}.parquet"
            self.writer = pq.ParquetWriter(
                self.path, table.schema, coerce_timestamps="us", allow_truncated_timestamps=False
            )
        if self.writer.schema != table.schema:
            table = table.cast(self.writer.schema)
        self.writer.write_table(table)
        self.rows += table.num_rows
        if SOURCE_FILE_COLUMN in table.schema.names:
            for item in pc.value_counts(table.column(SOURCE_FILE_COLUMN)).to_pylist():
                name = item["values"]
                self._part_files[name] = self._part_files.get(name, 0) + item["counts"]
        if self.rows >= PART_ROWS:
            self.flush()

    def flush(self) -> None:
        if self.writer is None:
            return
        self.writer.close()
        assert self.path is not None
        if self.rows:
            self.load(self.path, self.number)
        self.path.unlink()
        self.rows_loaded += self.rows
        for name, count in self._part_files.items():
            self.files_loaded[name] = self.files_loaded.get(name, 0) + count
        self.writer, self.rows, self._part_files = None, 0, {}

    def close(self) -> None:
        self.flush()
