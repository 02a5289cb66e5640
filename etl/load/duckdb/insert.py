"""SQL and batch insertion for the DuckDB loader: identifiers, the projection of a batch,
exact text of values, progress while DuckDB consumes an Arrow stream, the table a load writes
(`Write`), rollback."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pyarrow as pa

from etl.exceptions import BadInputError
from etl.formats.native import NativeScan
from etl.load.base import (
    LOADED_AT_COLUMN,
    RUN_ID_COLUMN,
    LoadRequest,
)
from etl.load.duckdb.memory import MemoryBudget
from etl.schema import is_json

OUT_OF_MEMORY = (
    "DuckDB ran out of its memory_limit ({limit}) loading {table}: {error}. DuckDB holds each "
    "value whole in its buffer (about 2-4x its size): raise `destination.memory_limit`, or "
    "remove it for the automatic limit, which grows with the largest values (docs/config.md, "
    '"Large values"). Nothing was written.'
)


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def exact_text(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Return `batch` with its decimal256 columns as their exact decimal text (VARCHAR):
    DuckDB's DECIMAL stops at 38 digits, and a DOUBLE or a rounded value would change them
    silently. The text is the shortest exact form (`1.5`, not `1.50000...`)."""
    if not any(pa.types.is_decimal256(field.type) for field in batch.schema):
        return batch
    arrays, fields = [], []
    for field, array in zip(batch.schema, batch.columns, strict=True):
        if pa.types.is_decimal256(field.type):
            # Arrow's decimal text switches to exponents (`0E-30`); Python's `f` format does not
            text = pa.array(
                [None if v is None else plain(v) for v in array.to_pylist()], pa.string()
            )
            array, field = text, pa.field(field.name, pa.string(), metadata=field.metadata)
        arrays.append(array)
        fields.append(field)
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))


def plain(value: Decimal) -> str:
    """Return `value` as plain decimal text without trailing fractional zeros (`1.5`, `0`)."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def select_list(schema: pa.Schema, cast_to: dict[str, str] | None = None) -> str:
    """Return the SELECT list loading `schema`: JSON-marked text as JSON, the metadata columns."""
    items = []
    for field in schema:
        name = quote(field.name)
        if cast_to and field.name in cast_to:
            items.append(f"CAST({name} AS {cast_to[field.name]}) AS {name}")
        elif is_json(field):
            items.append(f"CAST({name} AS JSON) AS {name}")
        else:
            items.append(name)
    items += [f"?::VARCHAR AS {RUN_ID_COLUMN}", f"?::TIMESTAMPTZ AS {LOADED_AT_COLUMN}"]
    return ", ".join(items)


def native_select_list(scan: NativeScan, cast_to: dict[str, str] | None = None) -> str:
    """Return the SELECT list loading `scan` from DuckDB's reader of its file: each column read
    by its file name under its destination name (cast when the table holds it as another
    type), the constants (`_etl_source_file`) as literals, then `select_list`'s metadata
    columns (the same two parameters)."""
    items = []
    for field in scan.schema:
        name = quote(field.name)
        if field.name in scan.constants:
            value = scan.constants[field.name].replace("'", "''")
            item = f"'{value}'::VARCHAR"
        else:
            item = quote(scan.sources[field.name])
        if cast_to and field.name in cast_to:
            item = f"CAST({item} AS {cast_to[field.name]})"
        items.append(f"{item} AS {name}")
    return ", ".join([*items, select_list(pa.schema([]))])


def insert_native(connection, write_to, scan, cast_to, params) -> None:
    """Load `scan` (a local Parquet file DuckDB reads itself, in parallel) into `write_to`
    (`native_select_list`; `params`: run id and load time).

    Raises:
        BadInputError: DuckDB cannot read the file (names it and DuckDB's reason).
        duckdb.OutOfMemoryException: as from any INSERT (the caller words it).
    """
    import duckdb

    try:
        connection.execute(
            f"INSERT INTO {write_to} BY NAME SELECT {native_select_list(scan, cast_to)} "
            "FROM read_parquet(?)",
            [*params, scan.path],
        )
    except duckdb.OutOfMemoryException:
        raise
    except duckdb.Error as exc:
        raise BadInputError(f"not a readable Parquet file ({exc})", file=scan.key) from exc


PROGRESS_INTERVAL_S = 0.5
"""Seconds between progress reports while an INSERT streams."""


def execute_reporting(connection, sql, params, stream, reported, on_batch):
    """Run `sql` in a helper thread while this thread reports the rows DuckDB has pulled from
    `stream`; return the rows reported so far.

    DuckDB pulls the batch stream from its own threads, where the caller's progress callback
    must not run (it may write to a database whose connections are per thread); the callback
    runs here, in the caller's thread, every PROGRESS_INTERVAL_S.
    """
    outcome: dict[str, BaseException] = {}

    def execute() -> None:
        try:
            connection.execute(sql, params)
        except BaseException as exc:  # noqa: BLE001  re-raised in the caller's thread
            outcome["error"] = exc

    worker = threading.Thread(target=execute, name="etl-duckdb-insert", daemon=True)
    worker.start()
    while True:
        worker.join(PROGRESS_INTERVAL_S)
        # report once more after the INSERT ended: one that finished before the first look
        # would otherwise report no rows at all (seen as a last progress call of (0, bytes))
        if on_batch and stream.rows > reported and "error" not in outcome:
            on_batch(stream.rows - reported)
            reported = stream.rows
        if not worker.is_alive():
            break
    if "error" in outcome:
        raise outcome["error"]
    return reported


INSERT_BATCH_ROWS = 16_384
"""Most rows handed to DuckDB's Arrow scan at once (zero-copy slices of larger batches): TPC-H
lineitem -> DuckDB peaked ~45 MB lower than with 65,536-row batches, at the same CPU time."""


class BatchStream:
    """Counts the rows DuckDB pulls and keeps the exception the producer raised, which DuckDB
    would otherwise report as its own InvalidInputException."""

    def __init__(self) -> None:
        self.rows = 0
        self.error: BaseException | None = None
        self.fit: Callable[[pa.RecordBatch], None] | None = None
        """Called with each batch before DuckDB reads it (`MemoryBudget.fit_batch`)."""

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        try:
            for batch in batches:
                if self.fit is not None:
                    self.fit(batch)
                # DuckDB's memory follows the size of the batches it scans, not their number
                for offset in range(0, batch.num_rows, INSERT_BATCH_ROWS):
                    piece = batch.slice(offset, INSERT_BATCH_ROWS)
                    self.rows += piece.num_rows
                    yield piece
        except BaseException as exc:
            self.error = exc
            raise


@dataclasses.dataclass
class Write:
    """One DuckDB load inside its transaction: the tables it writes and the rows DuckDB pulled."""

    connection: Any
    dataset: str
    """The destination dataset (a DuckDB schema), unquoted."""
    request: LoadRequest
    loaded_at: dt.datetime
    """`_etl_loaded_at` of every row of the run (UTC)."""
    budget: MemoryBudget
    """DuckDB's memory limit, raised for large values (unless configured)."""
    stream: BatchStream = dataclasses.field(default_factory=BatchStream)
    reported: int = 0
    """Rows reported to `request.on_batch` so far."""

    @property
    def staged(self) -> bool:
        """Whether the batches go to a staging table (replace swaps it in, merge merges it)."""
        return self.request.write_disposition in ("replace", "merge")

    @property
    def table(self) -> str:
        """The name of the table the batches are inserted into (the staging table if staged)."""
        return f"{self.request.table}__etl_staging" if self.staged else self.request.table

    @property
    def write_to(self) -> str:
        """`table`, quoted and qualified."""
        return self.qualified(self.table)

    @property
    def target(self) -> str:
        """The destination table, quoted and qualified."""
        return self.qualified(self.request.table)

    @property
    def params(self) -> list[Any]:
        """The parameters of `select_list`'s metadata columns: run id and load time."""
        return [self.request.run_id, self.loaded_at]

    def qualified(self, table: str) -> str:
        return f"{quote(self.dataset)}.{quote(table)}"

    def columns(self, table: str) -> dict[str, str]:
        """Return the columns of `table` in the dataset (name -> DuckDB type), in order; empty
        when the table does not exist."""
        rows = self.connection.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            [self.dataset, table],
        ).fetchall()
        return dict(rows)


def rollback(connection) -> None:
    import duckdb

    try:
        connection.rollback()
    except duckdb.Error:
        pass  # no transaction open
