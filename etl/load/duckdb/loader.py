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

import pyarrow as pa

from etl.exceptions import (
    DestinationError,
    MissingDependencyError,
    PrimaryKeyError,
    SchemaChangeError,
    TransientError,
)
from etl.formats.native import NativeScan
from etl.load.base import (
    LOAD_LOG_TABLE,
    REJECTED_SUFFIX,
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
from etl.load.duckdb.insert import (
    OUT_OF_MEMORY,
    BatchStream,
    exact_text,
    execute_reporting,
    insert_native,
    quote,
    rollback,
    select_list,
)
from etl.load.duckdb.types import (
    widened,
)
from etl.registry import register_loader
from etl.schema import first_source_file
from etl.state import SyncState


@register_loader("duckdb")
class DuckDbLoader(Loader):
    """Load into `destination.path` (created when missing), schema `destination.dataset`."""

    native_scans = frozenset({"parquet"})
    """Local Parquet files are read by DuckDB itself (`read_parquet`, parallel)."""

    def _connect(self):
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
        dataset = quote(self.destination.dataset)
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

    def _newest(self, connection, table: str) -> dict[str, tuple[str, str, str | None]]:
        """Return table name -> (run_id, state JSON, pipeline_id) of the newest load-log entry
        of each table `owned_with(table)` that has one."""
        names = owned_with(table)
        rows = connection.execute(
            f"SELECT table_name, run_id, state, pipeline_id "
            f"FROM {quote(self.destination.dataset)}.{LOAD_LOG_TABLE} "
            "WHERE table_name IN (SELECT unnest(?::VARCHAR[])) "
            "QUALIFY row_number() OVER (PARTITION BY table_name ORDER BY committed_at DESC) = 1",
            [names],
        ).fetchall()
        return {row[0]: (row[1], row[2], row[3]) for row in rows}

    def load(self, request: LoadRequest) -> LoadResult:
        import duckdb

        connection = self._connect()
        dataset = quote(self.destination.dataset)
        target = f"{dataset}.{quote(request.table)}"
        staging_name = f"{request.table}__etl_staging"
        replace = request.write_disposition == "replace"
        merge = request.write_disposition == "merge"
        staged = replace or merge
        write_to = f"{dataset}.{quote(staging_name)}" if staged else target
        loaded_at = dt.datetime.now(dt.UTC)
        rows = 0
        stream: BatchStream | None = None
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
            stream = BatchStream()
            reported = 0
            # one INSERT per run of same-schema batches, streamed from a RecordBatchReader: DuckDB
            # then writes full row groups out under its memory limit instead of holding every
            # inserted batch until the commit
            incoming = (exact_text(batch) for batch in request.batches)
            grouped = itertools.groupby(
                incoming, key=lambda batch: (isinstance(batch, NativeScan), batch.schema)
            )
            for (native, _), group in grouped:
                first = next(group)  # noqa: B031  each group is consumed once, in order
                if native:
                    for scan in itertools.chain([first], group):  # noqa: B031
                        columns, cast_to = self._prepare(
                            connection, write_to, columns, scan.columns, params, request, scan
                        )
                        insert_native(connection, write_to, scan, cast_to, params)
                        stream.rows += scan.num_rows
                        reported += scan.num_rows
                        if request.on_batch and scan.num_rows:
                            request.on_batch(scan.num_rows)
                    continue
                columns, cast_to = self._prepare(
                    connection, write_to, columns, first, params, request
                )
                batches = stream(itertools.chain([first], group))  # noqa: B031
                connection.register(
                    "_etl_batch", pa.RecordBatchReader.from_batches(first.schema, batches)
                )
                reported = execute_reporting(
                    connection,
                    f"INSERT INTO {write_to} BY NAME SELECT {select_list(first.schema, cast_to)} "
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
                    if request.merge_key is not None:  # a merge's full refresh: one row per key
                        self._keep_latest(connection, request.table, write_to, request.merge_key())
                    connection.execute(f"DROP TABLE IF EXISTS {target}")
                    connection.execute(f"ALTER TABLE {write_to} RENAME TO {quote(request.table)}")
            elif merge:
                assert request.merge_key is not None
                self._merge_into(connection, request.table, staging_name, request.merge_key())
            state = request.finalize()
            rejected = request.rejected_rows() if request.rejected_rows else None
            name = f"{dataset}.{quote(request.table + REJECTED_SUFFIX)}"
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
                select = f"SELECT *, {select_list(pa.schema([]))} FROM _etl_rejected"
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
            rollback(connection)
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
            rollback(connection)
            raise
        finally:
            connection.close()
        return LoadResult(rows_loaded=rows, schema=schema)

    def _prepare(self, connection, write_to, columns, probe, params, request, scan=None):
        """Create `write_to` from `probe`'s columns (a batch, or a scan's columns) when it has
        none yet, else evolve it for them; return its columns and the casts of `probe`'s
        columns into them."""
        staged = request.write_disposition in ("replace", "merge")
        table = f"{request.table}__etl_staging" if staged else request.table
        connection.register("_etl_probe", probe)
        try:
            if not columns:
                connection.execute(
                    f"CREATE TABLE {write_to} AS SELECT {select_list(probe.schema)} "
                    "FROM _etl_probe LIMIT 0",
                    params,
                )
                return self._columns(connection, table), {}
            cast_to = self._evolve(
                connection,
                write_to,
                columns,
                probe,
                params,
                request.table,
                request.allow_widen_to_string,
                scan,
            )
            return columns, cast_to
        finally:
            connection.unregister("_etl_probe")

    def _check_fence(self, connection, table: str, fence: Fence) -> None:
        """Raise `TableOwnedError` / `SupersededError` (the caller rolls back) when the load log,
        as this transaction sees it, is not where the run planned from."""
        newest = self._newest(connection, table)
        check_owner(table, fence.pipeline_id, {name: entry[2] for name, entry in newest.items()})
        found = newest.get(table)
        check_fence(table, fence, found[0] if found else None, found[2] if found else None)

    def _merge_into(self, connection, table: str, staging: str, key: MergeKey) -> None:
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
        dataset = quote(self.destination.dataset)
        source, target = f"{dataset}.{quote(staging)}", f"{dataset}.{quote(table)}"
        staged = self._columns(connection, staging)
        if not staged:
            return  # no batch at all (no file matched): nothing to merge, no staging table
        keys = ", ".join(quote(name) for name in key.primary_key)
        both = ", ".join(quote(name) for name in [*key.primary_key, *key.order_by])
        duplicate = connection.execute(
            f"SELECT {both}, count(*) FROM {source} GROUP BY {both} HAVING count(*) > 1 LIMIT 1"
        ).fetchone()
        if duplicate is not None:
            raise PrimaryKeyError(table, key.primary_key, duplicate_reason(key, duplicate))
        order = ", ".join(f"{quote(name)} DESC NULLS LAST" for name in key.order_by)
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
                    connection.execute(f"ALTER TABLE {target} ADD COLUMN {quote(name)} {data_type}")
                elif existing[name] != data_type:
                    connection.execute(f"ALTER TABLE {target} ALTER {quote(name)} TYPE {data_type}")
            match = " AND ".join(
                f"{target}.{quote(n)} = {source}.{quote(n)}" for n in key.primary_key
            )
            connection.execute(f"DELETE FROM {target} USING {source} WHERE {match}")
            connection.execute(f"INSERT INTO {target} BY NAME {latest}")
        connection.execute(f"DROP TABLE {source}")

    def _keep_latest(self, connection, table: str, staging: str, key: MergeKey) -> None:
        """Delete from the (quoted, qualified) `staging` every row but each key's latest (the
        rule of `_merge_into`): a merge's full refresh swaps in one row per key, as merging
        the same rows would leave.

        Raises:
            PrimaryKeyError: two staged rows share the key and the `order_by` values.
        """
        keys = ", ".join(quote(name) for name in key.primary_key)
        both = ", ".join(quote(name) for name in [*key.primary_key, *key.order_by])
        duplicate = connection.execute(
            f"SELECT {both}, count(*) FROM {staging} GROUP BY {both} HAVING count(*) > 1 LIMIT 1"
        ).fetchone()
        if duplicate is not None:
            raise PrimaryKeyError(table, key.primary_key, duplicate_reason(key, duplicate))
        order = ", ".join(f"{quote(name)} DESC NULLS LAST" for name in key.order_by)
        connection.execute(
            f"DELETE FROM {staging} WHERE rowid NOT IN (SELECT rowid FROM {staging} "
            f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {order}) = 1)"
        )

    def _columns(self, connection, table: str) -> dict[str, str]:
        rows = connection.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            [self.destination.dataset, table],
        ).fetchall()
        return dict(rows)

    def _evolve(self, connection, write_to, columns, batch, params, table, to_string, scan=None):
        """Add new columns and widen existing ones for `batch`'s schema (`widened`); return
        the columns to CAST to their destination type (narrower values into a wider column,
        text columns that are NULL in the first batch)."""
        incoming = dict(
            (row[0], row[1])
            for row in connection.execute(
                f"DESCRIBE SELECT {select_list(batch.schema)} FROM _etl_probe LIMIT 0", params
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
            if data_type == "VARCHAR" and _only_nulls(connection, batch, name, scan):
                cast_to[name] = existing  # an empty text column; a value that does not
                continue  # convert fails the INSERT, so nothing is changed silently
            wider = widened(existing, data_type, to_string=to_string)
            if wider is None:
                file = scan.key if scan is not None else first_source_file(batch)
                raise SchemaChangeError(table, name, existing, data_type, file)
            if wider != existing:
                connection.execute(f"ALTER TABLE {write_to} ALTER {quote(name)} TYPE {wider}")
                columns[name] = wider
            if wider != data_type:
                cast_to[name] = wider  # e.g. INTEGER values into a DECIMAL or VARCHAR column
        return cast_to


def _only_nulls(connection, batch, name, scan) -> bool:
    """Return True when column `name` holds no value: in `batch`, or, for a native `scan`
    (whose `batch` is its columns without rows), in the file DuckDB reads."""
    if scan is None:
        return batch.column(name).null_count == batch.num_rows
    source = scan.sources.get(name)
    if source is None:
        return False  # a constant of every row
    rows = connection.execute(
        f"SELECT count({quote(source)}) FROM read_parquet(?)", [scan.path]
    ).fetchall()  # fetchone would leave the result open on the connection
    return bool(rows[0][0] == 0)
