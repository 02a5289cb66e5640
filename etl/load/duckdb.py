"""DuckDB loader: the embedded default warehouse (a single `.duckdb` file).

One DuckDB transaction per run holds the fence check, the schema changes, the deletes of
replaced files' rows, every inserted batch, the table swap of a snapshot, a merge's replacement
of changed keys and the load-log row with the new state, so a crash at any point leaves the
table and the log as they were before the run.

Fencing (etl/load/base.py): the transaction's first statement reads the newest load-log entry of
the table (and the owners of the tables `owned_with` it); when it is not the one the run planned
from, or another pipeline owns the table, the transaction is rolled back before anything is
written (`SupersededError` / `TableOwnedError`). The read and the log insert are in one
transaction, and a DuckDB file has one writing process at a time (its file lock), so no other
process can commit between them. Two connections of one process writing the same file are not
fenced against each other (DuckDB's optimistic concurrency does not conflict on appends).
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import re
import threading
from collections.abc import Iterator
from decimal import Decimal

import pyarrow as pa

from etl.exceptions import (
    DestinationError,
    MissingDependencyError,
    PrimaryKeyError,
    SchemaChangeError,
    TransientError,
)
from etl.load.base import (
    LOAD_LOG_TABLE,
    LOADED_AT_COLUMN,
    REJECTED_SUFFIX,
    RUN_ID_COLUMN,
    CommittedLoad,
    Fence,
    Loader,
    LoadRequest,
    LoadResult,
    MergeKey,
    check_fence,
    check_owner,
    duplicate_reason,
    owned_with,
)
from etl.registry import register_loader
from etl.schema import is_json
from etl.state import SyncState

_INT_RANK = {"TINYINT": 1, "SMALLINT": 2, "INTEGER": 3, "BIGINT": 4, "HUGEINT": 5}
_UINT_RANK = {"UTINYINT": 1, "USMALLINT": 2, "UINTEGER": 3, "UBIGINT": 4, "UHUGEINT": 5}
_SIGNED = {rank: name for name, rank in _INT_RANK.items()}
_DIGITS = {
    "TINYINT": 3,
    "SMALLINT": 5,
    "INTEGER": 10,
    "BIGINT": 19,
    "HUGEINT": 39,
    "UTINYINT": 3,
    "USMALLINT": 5,
    "UINTEGER": 10,
    "UBIGINT": 20,
    "UHUGEINT": 39,
}
"""Decimal digits an integer type needs (its largest magnitude)."""
_EXACT_IN_FLOAT = {"TINYINT", "SMALLINT", "UTINYINT", "USMALLINT"}
"""Integers a FLOAT (24-bit significand) holds exactly."""
_EXACT_IN_DOUBLE = _EXACT_IN_FLOAT | {"INTEGER", "UINTEGER", "FLOAT"}
"""Types a DOUBLE (53-bit significand) holds exactly."""
_DECIMAL = re.compile(r"DECIMAL\((\d+),\s*(\d+)\)")
STRING = "VARCHAR"


def widened(existing: str, incoming: str, *, to_string: bool = False) -> str | None:
    """Return the type a column of `existing` type must have to hold `incoming` values too:
    `existing` when it already does, a wider type when that is a lossless widening, VARCHAR
    when no widening holds both and `to_string` (`allow_widen_to_string`), else None.

    Lossless widenings (shared/DESIGN.md §5 "Schema", issue 17 item 8): integer -> wider
    integer (signed when one side is unsigned); integer -> DECIMAL(p, s) when p - s covers its
    digits (else the DECIMAL both fit, up to 38 digits); FLOAT -> DOUBLE, and integers of at
    most 32 bits -> DOUBLE (16 bits -> FLOAT); DECIMAL(p, s) -> DECIMAL(p', s') with
    p' - s' >= p - s and s' >= s (the smallest such, at most 38 digits: DuckDB's DECIMAL limit,
    https://duckdb.org/docs/sql/data_types/numeric). Anything -> VARCHAR only with `to_string`.
    """
    if existing == incoming:
        return existing
    wider = _lossless(existing, incoming)
    if wider is not None:
        return wider
    if to_string and not existing.endswith("]") and not incoming.endswith("]"):
        return STRING  # lists stay lists: their text would not load back into an array
    return None


def _lossless(existing: str, incoming: str) -> str | None:
    for ranks in (_INT_RANK, _UINT_RANK):
        if existing in ranks and incoming in ranks:
            return existing if ranks[existing] >= ranks[incoming] else incoming
    if existing in _INT_RANK and incoming in _UINT_RANK:
        rank = max(_INT_RANK[existing], _UINT_RANK[incoming] + 1)
        return _SIGNED.get(rank)
    if existing in _UINT_RANK and incoming in _INT_RANK:
        rank = max(_UINT_RANK[existing] + 1, _INT_RANK[incoming])
        return _SIGNED.get(rank)
    for kind, exact in (("FLOAT", _EXACT_IN_FLOAT), ("DOUBLE", _EXACT_IN_DOUBLE)):
        if existing == kind and incoming in exact:
            return existing
        if incoming == kind and existing in exact:
            return incoming
    if existing == "FLOAT" and incoming in _EXACT_IN_DOUBLE | {"DOUBLE"}:
        return "DOUBLE"
    if incoming == "FLOAT" and existing in _EXACT_IN_DOUBLE:
        return "DOUBLE"
    old, new = _decimal(existing), _decimal(incoming)
    if old is None and new is None:
        return None
    if old is None or new is None:
        if (existing if old is None else incoming) not in _DIGITS:
            return None
    (p1, s1) = old or (_DIGITS[existing], 0)
    (p2, s2) = new or (_DIGITS[incoming], 0)
    scale = max(s1, s2)
    precision = max(p1 - s1, p2 - s2) + scale
    if precision > 38:
        return None
    if old is not None and (precision, scale) == old:
        return existing
    return f"DECIMAL({precision},{scale})"


def _decimal(data_type: str) -> tuple[int, int] | None:
    match = _DECIMAL.fullmatch(data_type)
    return (int(match.group(1)), int(match.group(2))) if match else None


OUT_OF_MEMORY = (
    "DuckDB ran out of its memory_limit ({limit}) loading {table}: {error}. A single value "
    "needs about 3x its size in DuckDB's buffers: raise `destination.memory_limit` (e.g. "
    "'512MB' for values up to ~128 MiB; docs/config.md, \"Large values\"). Nothing was written."
)


def _q(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


@register_loader("duckdb")
class DuckDbLoader(Loader):
    """Load into `destination.path` (created when missing), schema `destination.dataset`."""

    def _connect(self):  # type: ignore[no-untyped-def]
        try:
            import duckdb
        except ModuleNotFoundError as exc:  # pragma: no cover - a requirement
            raise MissingDependencyError("duckdb", "The duckdb destination") from exc
        path = self.destination.path
        if os.path.dirname(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            connection = duckdb.connect(
                path, config={"memory_limit": self.destination.memory_limit}
            )
        except duckdb.IOException as exc:
            # only another process's lock on the file passes by waiting; a file that is not a
            # DuckDB database (or of a newer format, or unreadable) needs fixing first
            if "lock" in str(exc).lower():
                raise TransientError(f"DuckDB file {path} cannot be opened: {exc}") from exc
            raise DestinationError(
                f"DuckDB file {path} cannot be opened: {exc}. Not retried: point "
                "destination.path at a DuckDB database file (or a new path) first."
            ) from exc
        connection.execute("SET enable_progress_bar = false")  # it would draw on stderr
        dataset = _q(self.destination.dataset)
        connection.execute(f"CREATE SCHEMA IF NOT EXISTS {dataset}")
        connection.execute(
            f"CREATE TABLE IF NOT EXISTS {dataset}.{LOAD_LOG_TABLE} (table_name VARCHAR NOT NULL, "
            "run_id VARCHAR NOT NULL, committed_at TIMESTAMPTZ NOT NULL, rows_loaded BIGINT, "
            "state JSON NOT NULL, pipeline_id VARCHAR)"
        )
        # load logs made before pipeline ids: their entries stay NULL (owned by no one)
        connection.execute(
            f"ALTER TABLE {dataset}.{LOAD_LOG_TABLE} ADD COLUMN IF NOT EXISTS pipeline_id VARCHAR"
        )
        return connection

    def last_committed(self, table: str, pipeline_id: str | None = None) -> CommittedLoad | None:
        import duckdb

        if not os.path.exists(self.destination.path):
            return None  # nothing loaded yet; the file is created by the first load, not here
        connection = self._connect()
        try:
            newest = self._newest(connection, table)
        except duckdb.Error as exc:
            raise DestinationError(f"DuckDB load log of {table} cannot be read: {exc}") from exc
        finally:
            connection.close()
        check_owner(table, pipeline_id, {name: entry[2] for name, entry in newest.items()})
        if table not in newest:
            return None
        run_id, state, owner = newest[table]
        return CommittedLoad(
            run_id=run_id, state=SyncState.model_validate_json(state), pipeline_id=owner
        )

    def _newest(self, connection, table: str) -> dict[str, tuple[str, str, str | None]]:  # type: ignore[no-untyped-def]
        """Return table name -> (run_id, state JSON, pipeline_id) of the newest load-log entry
        of each table `owned_with(table)` that has one."""
        names = owned_with(table)
        rows = connection.execute(
            f"SELECT table_name, run_id, state, pipeline_id "
            f"FROM {_q(self.destination.dataset)}.{LOAD_LOG_TABLE} "
            "WHERE table_name IN (SELECT unnest(?::VARCHAR[])) "
            "QUALIFY row_number() OVER (PARTITION BY table_name ORDER BY committed_at DESC) = 1",
            [names],
        ).fetchall()
        return {row[0]: (row[1], row[2], row[3]) for row in rows}

    def load(self, request: LoadRequest) -> LoadResult:
        import duckdb

        connection = self._connect()
        dataset = _q(self.destination.dataset)
        target = f"{dataset}.{_q(request.table)}"
        staging_name = f"{request.table}__etl_staging"
        replace = request.write_disposition == "replace"
        merge = request.write_disposition == "merge"
        staged = replace or merge
        write_to = f"{dataset}.{_q(staging_name)}" if staged else target
        loaded_at = dt.datetime.now(dt.UTC)
        rows = 0
        stream: _Stream | None = None
        try:
            connection.begin()
            if request.fence is not None:
                self._check_fence(connection, request.table, request.fence)
            if staged:
                connection.execute(f"DROP TABLE IF EXISTS {write_to}")
            if merge and self._columns(connection, request.table):
                # staged with the table's columns, so new batches evolve as appends do
                connection.execute(f"CREATE TABLE {write_to} AS SELECT * FROM {target} LIMIT 0")
            columns = self._columns(connection, staging_name if staged else request.table)
            if columns and request.replace_files:
                connection.execute(
                    f"DELETE FROM {write_to} WHERE _etl_source_file IN "
                    f"(SELECT unnest(?::VARCHAR[]))",
                    [request.replace_files],
                )
            params = [request.run_id, loaded_at]
            stream = _Stream()
            reported = 0
            # one INSERT per run of same-schema batches, streamed from a RecordBatchReader: DuckDB
            # then writes full row groups out under its memory limit instead of holding every
            # inserted batch until the commit
            incoming = (_exact_text(batch) for batch in request.batches)
            for _, group in itertools.groupby(incoming, key=lambda batch: batch.schema):
                first = next(group)  # noqa: B031  each group is consumed once, in order
                rest = group  # noqa: B031
                connection.register("_etl_probe", first)
                if not columns:
                    connection.execute(
                        f"CREATE TABLE {write_to} AS SELECT {_select(first.schema)} "
                        "FROM _etl_probe LIMIT 0",
                        params,
                    )
                    columns = self._columns(connection, staging_name if staged else request.table)
                    cast_to: dict[str, str] = {}
                else:
                    cast_to = self._evolve(
                        connection,
                        write_to,
                        columns,
                        first,
                        params,
                        request.table,
                        request.allow_widen_to_string,
                    )
                connection.unregister("_etl_probe")
                batches = stream(itertools.chain([first], rest))
                connection.register(
                    "_etl_batch", pa.RecordBatchReader.from_batches(first.schema, batches)
                )
                reported = _execute_reporting(
                    connection,
                    f"INSERT INTO {write_to} BY NAME SELECT {_select(first.schema, cast_to)} "
                    "FROM _etl_batch",
                    params,
                    stream,
                    reported,
                    request.on_batch,
                )
                connection.unregister("_etl_batch")
            rows = stream.rows
            if replace:
                if not columns:
                    # an empty snapshot: keep the table's columns, drop its rows
                    if self._columns(connection, request.table):
                        connection.execute(f"DELETE FROM {target}")
                else:
                    connection.execute(f"DROP TABLE IF EXISTS {target}")
                    connection.execute(f"ALTER TABLE {write_to} RENAME TO {_q(request.table)}")
            elif merge:
                assert request.merge_key is not None
                self._merge_into(connection, request.table, staging_name, request.merge_key())
            state = request.finalize()
            rejected = request.rejected_rows() if request.rejected_rows else None
            name = f"{dataset}.{_q(request.table + REJECTED_SUFFIX)}"
            has_rejects = bool(self._columns(connection, request.table + REJECTED_SUFFIX))
            if replace and has_rejects:
                # a snapshot's rejects are its own: the earlier snapshot's go in this commit
                connection.execute(f"DELETE FROM {name}")
            elif request.replace_files and has_rejects:
                # a changed file's earlier rejects go with its earlier rows
                connection.execute(
                    f"DELETE FROM {name} WHERE file IN (SELECT unnest(?::VARCHAR[]))",
                    [request.replace_files],
                )
            if rejected is not None and rejected.num_rows:
                connection.register("_etl_rejected", rejected)
                select = f"SELECT *, {_select(pa.schema([]))} FROM _etl_rejected"
                connection.execute(f"CREATE TABLE IF NOT EXISTS {name} AS {select} LIMIT 0", params)
                connection.execute(f"INSERT INTO {name} BY NAME {select}", params)
                connection.unregister("_etl_rejected")
            connection.execute(
                f"INSERT INTO {dataset}.{LOAD_LOG_TABLE} (table_name, run_id, committed_at, "
                "rows_loaded, state, pipeline_id) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    request.table,
                    request.run_id,
                    loaded_at,
                    rows,
                    state.model_dump_json(),
                    request.fence.pipeline_id if request.fence else None,
                ],
            )
            connection.commit()
            schema = [
                {"name": name, "type": data_type}
                for name, data_type in self._columns(connection, request.table).items()
            ]
        except duckdb.Error as exc:
            _rollback(connection)
            if stream is not None and stream.error is not None:
                raise stream.error from None  # the source failed, not DuckDB
            if isinstance(exc, duckdb.OutOfMemoryException):
                raise DestinationError(
                    OUT_OF_MEMORY.format(
                        table=request.table,
                        limit=self.destination.memory_limit,
                        error=str(exc).splitlines()[0],  # DuckDB's own advice is SQL
                    )
                ) from exc
            raise DestinationError(f"DuckDB rejected the load into {request.table}: {exc}") from exc
        except BaseException:
            _rollback(connection)
            raise
        finally:
            connection.close()
        return LoadResult(rows_loaded=rows, schema=schema)

    def _check_fence(self, connection, table: str, fence: Fence) -> None:  # type: ignore[no-untyped-def]
        """Raise `TableOwnedError` / `SupersededError` (the caller rolls back) when the load log,
        as this transaction sees it, is not where the run planned from."""
        newest = self._newest(connection, table)
        check_owner(table, fence.pipeline_id, {name: entry[2] for name, entry in newest.items()})
        found = newest.get(table)
        check_fence(table, fence, found[0] if found else None, found[2] if found else None)

    def _merge_into(self, connection, table: str, staging: str, key: MergeKey) -> None:  # type: ignore[no-untyped-def]
        """Replace the rows of `table` whose key is in `staging` with each key's latest staged
        row, insert the new keys, and drop `staging`; inside the run's transaction.

        The latest row of a key is the one with the greatest `key.order_by` values (NULL
        lowest). A first run creates `table` from the staged rows. The table's columns are
        added and widened to the staging's (which started as a copy of the table's columns and
        was evolved batch by batch as an append is); a table column the source no longer has
        is NULL in the replaced rows, as in appended ones.

        Raises:
            PrimaryKeyError: two staged rows share the key and the `order_by` values.
        """
        dataset = _q(self.destination.dataset)
        source, target = f"{dataset}.{_q(staging)}", f"{dataset}.{_q(table)}"
        staged = self._columns(connection, staging)
        if not staged:
            return  # no batch at all (no file matched): nothing to merge, no staging table
        keys = ", ".join(_q(name) for name in key.primary_key)
        both = ", ".join(_q(name) for name in [*key.primary_key, *key.order_by])
        duplicate = connection.execute(
            f"SELECT {both}, count(*) FROM {source} GROUP BY {both} HAVING count(*) > 1 LIMIT 1"
        ).fetchone()
        if duplicate is not None:
            raise PrimaryKeyError(table, key.primary_key, duplicate_reason(key, duplicate))
        order = ", ".join(f"{_q(name)} DESC NULLS LAST" for name in key.order_by)
        latest = (
            f"SELECT * FROM {source} "
            f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {order}) = 1"
        )
        existing = self._columns(connection, table)
        if not existing:
            connection.execute(f"CREATE TABLE {target} AS {latest}")
        else:
            for name, data_type in staged.items():
                if name not in existing:
                    connection.execute(f"ALTER TABLE {target} ADD COLUMN {_q(name)} {data_type}")
                elif existing[name] != data_type:
                    connection.execute(f"ALTER TABLE {target} ALTER {_q(name)} TYPE {data_type}")
            match = " AND ".join(f"{target}.{_q(n)} = {source}.{_q(n)}" for n in key.primary_key)
            connection.execute(f"DELETE FROM {target} USING {source} WHERE {match}")
            connection.execute(f"INSERT INTO {target} BY NAME {latest}")
        connection.execute(f"DROP TABLE {source}")

    def _columns(self, connection, table: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
        rows = connection.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            [self.destination.dataset, table],
        ).fetchall()
        return dict(rows)

    def _evolve(self, connection, write_to, columns, batch, params, table, to_string):  # type: ignore[no-untyped-def]
        """Add new columns and widen existing ones for `batch`'s schema (`widened`); return
        the columns to CAST to their destination type (narrower values into a wider column,
        text columns that are NULL in the first batch)."""
        incoming = dict(
            (row[0], row[1])
            for row in connection.execute(
                f"DESCRIBE SELECT {_select(batch.schema)} FROM _etl_probe LIMIT 0", params
            ).fetchall()
        )
        cast_to = {}
        for name, data_type in incoming.items():
            if name not in columns:
                connection.execute(f"ALTER TABLE {write_to} ADD COLUMN {_q(name)} {data_type}")
                columns[name] = data_type
                continue
            existing = columns[name]
            if existing == data_type:
                continue
            if batch.column(name).null_count == batch.num_rows and data_type == "VARCHAR":
                cast_to[name] = existing  # an empty text column; a value that does not
                continue  # convert fails the INSERT, so nothing is changed silently
            wider = widened(existing, data_type, to_string=to_string)
            if wider is None:
                raise SchemaChangeError(table, name, existing, data_type)
            if wider != existing:
                connection.execute(f"ALTER TABLE {write_to} ALTER {_q(name)} TYPE {wider}")
                columns[name] = wider
            if wider != data_type:
                cast_to[name] = wider  # e.g. INTEGER values into a DECIMAL or VARCHAR column
        return cast_to


def _exact_text(batch: pa.RecordBatch) -> pa.RecordBatch:
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
                [None if v is None else _plain(v) for v in array.to_pylist()], pa.string()
            )
            array, field = text, pa.field(field.name, pa.string(), metadata=field.metadata)
        arrays.append(array)
        fields.append(field)
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))


def _plain(value: Decimal) -> str:
    """Return `value` as plain decimal text without trailing fractional zeros (`1.5`, `0`)."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _select(schema: pa.Schema, cast_to: dict[str, str] | None = None) -> str:
    """Return the SELECT list loading `schema`: JSON-marked text as JSON, the metadata columns."""
    items = []
    for field in schema:
        name = _q(field.name)
        if cast_to and field.name in cast_to:
            items.append(f"CAST({name} AS {cast_to[field.name]}) AS {name}")
        elif is_json(field):
            items.append(f"CAST({name} AS JSON) AS {name}")
        else:
            items.append(name)
    items += [f"?::VARCHAR AS {RUN_ID_COLUMN}", f"?::TIMESTAMPTZ AS {LOADED_AT_COLUMN}"]
    return ", ".join(items)


PROGRESS_INTERVAL_S = 0.5
"""Seconds between progress reports while an INSERT streams."""


def _execute_reporting(connection, sql, params, stream, reported, on_batch):  # type: ignore[no-untyped-def]
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


class _Stream:
    """Counts the rows DuckDB pulls and keeps the exception the producer raised, which DuckDB
    would otherwise report as its own InvalidInputException."""

    def __init__(self) -> None:
        self.rows = 0
        self.error: BaseException | None = None

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        try:
            for batch in batches:
                # DuckDB's memory follows the size of the batches it scans, not their number
                for offset in range(0, batch.num_rows, INSERT_BATCH_ROWS):
                    piece = batch.slice(offset, INSERT_BATCH_ROWS)
                    self.rows += piece.num_rows
                    yield piece
        except BaseException as exc:
            self.error = exc
            raise


def _rollback(connection) -> None:  # type: ignore[no-untyped-def]
    import duckdb

    try:
        connection.rollback()
    except duckdb.Error:
        pass  # no transaction open
