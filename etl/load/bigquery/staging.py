"""Staged Parquet of a BigQuery load: value checks BigQuery would reject a load for, lineage
columns, alignment to the staging schema, and the part writer (one load job per run).

The loader uploads the staged Parquet from the local disk (`load_table_from_file`: the
`jobs.insert` upload carries one file, and the destination has no GCS staging bucket), so one
load job per table per run means one staged file per run: the batches go into one Parquet file
in row groups of up to PART_ROWS rows (memory stays bounded by one batch). A change of a
column's Arrow type between batches (int32 in one source file, int64 in the next) or a new
column starts another part file; at the end the parts are rewritten into one file, each column
cast to the common type of its parts (lossless casts only). Only when no lossless common Arrow
type exists is each part loaded by its own job (BigQuery's load-job quota is per table per day:
https://cloud.google.com/bigquery/quotas#load_jobs).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from etl.exceptions import (
    BadInputError,
)
from etl.load.base import (
    LOADED_AT_COLUMN,
    RUN_ID_COLUMN,
)
from etl.load.bigquery.types import loadable
from etl.schema import SOURCE_FILE_COLUMN

PART_ROWS = 1_000_000
"""Rows per Parquet row group of the run's staged file (all of it goes in one load job)."""

WRITER_OPTIONS: dict[str, Any] = {
    "coerce_timestamps": "us",
    "allow_truncated_timestamps": False,
    "write_statistics": False,
    "dictionary_pagesize_limit": 64 << 10,
}
"""`pq.ParquetWriter` options of the staged files. No column statistics: a load job does not
read them (BigQuery's Parquet loading reads the values and the schema: "Loading Parquet data
from Cloud Storage"). A 64 KiB dictionary page per column chunk (Arrow's default 1 MiB): a
column of many distinct values (keys, prices, comments) falls back to plain encoding after a
few thousand values instead of hashing ~130,000 first, while flags, dates and small numbers
keep their dictionaries. TPC-H lineitem, 3 M rows with the lineage columns, Snappy: 1.65 s /
114 MB with Arrow's defaults, 1.04 s / 106 MB with these (bench/PROFILE.md, "BigQuery
destination")."""


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


def with_metadata(batch: pa.RecordBatch, run_id: str, loaded_at: dt.datetime) -> pa.RecordBatch:
    arrays, fields = [], []
    for field, array in zip(batch.schema, batch.columns, strict=True):
        array, field = loadable(array, field)
        arrays.append(array)
        fields.append(field)
    n = batch.num_rows
    stamp = pa.timestamp("us", tz="UTC")
    # one scalar repeated in C (a Python list of n values took ~1.9 s per 6 M rows)
    arrays += [
        pa.repeat(pa.scalar(run_id, pa.string()), n),
        pa.repeat(pa.scalar(loaded_at, stamp), n),
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
    """Writes a run's batches into its staged Parquet file (row groups of up to PART_ROWS rows)
    and, at `close`, hands that one file to `load(path, number)`: one load job per run.

    A batch whose column types differ from the part's, or `flush` (a new column), starts
    another part; `close` rewrites the parts into one file (`_merged`), or, when no lossless
    common type exists, loads each part in turn. `rows_loaded` / `files_loaded` count the rows
    of the parts loaded before (a failed job's rows are located from them).
    """

    def __init__(self, folder: Path, load: Any) -> None:
        self.folder, self.load = folder, load
        self.writer: pq.ParquetWriter | None = None
        self.path: Path | None = None
        self.rows = 0
        self.number = 0
        self.rows_loaded = 0  # rows of the run in loaded parts
        self.files_loaded: dict[str, int] = {}  # source file -> its rows in loaded parts
        self._part_files: dict[str, int] = {}
        self.parts: list[tuple[Path, int, dict[str, int]]] = []  # written: path, rows, files

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
            self.writer = pq.ParquetWriter(self.path, table.schema, **WRITER_OPTIONS)
        if self.writer.schema != table.schema:
            table = table.cast(self.writer.schema)
        self.writer.write_table(table, row_group_size=PART_ROWS)
        self.rows += table.num_rows
        if SOURCE_FILE_COLUMN in table.schema.names:
            for item in pc.value_counts(table.column(SOURCE_FILE_COLUMN)).to_pylist():
                name = item["values"]
                self._part_files[name] = self._part_files.get(name, 0) + item["counts"]

    def flush(self) -> None:
        """End the current part (the next batch starts another); nothing is loaded yet."""
        if self.writer is None:
            return
        self.writer.close()
        assert self.path is not None
        if self.rows:
            self.parts.append((self.path, self.rows, self._part_files))
        else:
            self.path.unlink()
        self.writer, self.rows, self._part_files = None, 0, {}

    def close(self) -> None:
        """Load the run's staged rows: one file in one load job (none when no row was
        written)."""
        self.flush()
        parts, self.parts = self.parts, []
        if len(parts) > 1:
            merged = self._merged([path for path, _, _ in parts])
            if merged is not None:
                files: dict[str, int] = {}
                for _, _, counts in parts:
                    for name, count in counts.items():
                        files[name] = files.get(name, 0) + count
                for path, _, _ in parts:
                    path.unlink()
                parts = [(merged, sum(rows for _, rows, _ in parts), files)]
        for number, (path, rows, counts) in enumerate(parts, 1):
            self.load(path, number)
            path.unlink()
            self.rows_loaded += rows
            for name, count in counts.items():
                self.files_loaded[name] = self.files_loaded.get(name, 0) + count

    def _merged(self, paths: list[Path]) -> Path | None:
        """Rewrite the parts at `paths` into one Parquet file, batch by batch: the columns of
        the last part (every part's columns are a prefix of them: columns are only added), a
        column missing from an earlier part NULL, each column cast to the common type of its
        parts (int32 and int64 -> int64; pyarrow's permissive promotion, cast with overflow
        and truncation checks). Return its path, or None when no lossless common type exists
        (the parts are then loaded one job each)."""
        schemas = [pq.read_schema(path) for path in paths]
        target = self.folder / f"run{self.number + 1:05d}.parquet"
        try:
            schema = pa.schema(
                [
                    field.with_type(
                        _common_type(
                            [s.field(field.name).type for s in schemas if field.name in s.names]
                        )
                    ).with_nullable(True)
                    for field in schemas[-1]
                ]
            )
            with pq.ParquetWriter(target, schema, **WRITER_OPTIONS) as writer:
                for path in paths:
                    for batch in pq.ParquetFile(path).iter_batches(batch_size=65_536):
                        arrays = [
                            batch.column(field.name).cast(field.type, safe=True)
                            if field.name in batch.schema.names
                            else pa.nulls(batch.num_rows, type=field.type)
                            for field in schema
                        ]
                        writer.write_table(
                            pa.Table.from_arrays(arrays, schema=schema), row_group_size=PART_ROWS
                        )
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            target.unlink(missing_ok=True)
            return None
        return target


def _common_type(types: list[pa.DataType]) -> pa.DataType:
    """Return an Arrow type every type of `types` casts to without loss (they map to one
    BigQuery type: `BigQueryLoader` refuses other changes): pyarrow's permissive promotion
    (int32 and int64 -> int64, decimal(10, 2) and decimal(12, 4) -> decimal(12, 4)), text or
    bytes of any layout -> large_string / large_binary, zone-aware timestamps -> UTC.

    Raises:
        ArrowTypeError: no such type (a struct field that is an integer in one part and text
            in the next, ...).
    """
    if all(t == types[0] for t in types):
        return types[0]
    if all(
        pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)
        for t in types
    ):
        return pa.large_string()
    if all(
        pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t)
        for t in types
    ):
        return pa.large_binary()
    if all(pa.types.is_timestamp(t) and t.tz for t in types):
        return pa.timestamp("us", tz="UTC")
    fields = [pa.schema([pa.field("c", t)]) for t in types]
    return pa.unify_schemas(fields, promote_options="permissive").field("c").type
