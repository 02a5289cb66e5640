"""BigQuery loader: Parquet load jobs into a per-run staging table, then one atomic commit.

Transactional (append): one multi-statement transaction deletes the rows of replaced source
files, inserts the staging rows into the table and records the load (run id + state) in
`<dataset>._etl_loads`. Merge: the same transaction runs a `MERGE` of each key's latest staged
row into the table instead of the INSERT (and deletes no row). Catalog (replace): a copy job with WRITE_TRUNCATE swaps the staging
table in (readers see the old or the new table), then one transaction replaces the rows of
`<table>__rejected` with this snapshot's rejects and records the load. Never streaming
inserts. Every job (load, query, copy) carries the run's labels (`etl.load.base.job_labels`).
The commit's job id derives from the run id, the target table and the state it
commits, so a retried commit is found, not run twice.

Fencing (etl/load/base.py): the commit transaction's first statement reads the newest load-log
entry of the table and, when it is not the one the run planned from, fails the script with
`ERROR('etl-fence[...]')`, which rolls the transaction back; the loader raises
`SupersededError` (or `TableOwnedError` when the entry is another pipeline's). A snapshot's
copy job runs outside that transaction (a copy job cannot join one), so a catalog run checks the
load log once more just before the swap; a run stalled between that check and the swap would
swap in its snapshot and then be refused at the log write, leaving the table one snapshot
ahead of its log until the next run's snapshot replaces it (a snapshot holds every row, so no
row is duplicated). BigQuery isolates transactions by snapshot and does not make two
transactions that only INSERT conflict, so two commits planned from the same entry and
submitted within the same seconds are not excluded; a stalled run resuming minutes later is.
`RAISE` is not used: the BigQuery emulator answers an uncaught RAISE with an HTTP 500 instead
of a failed job.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from etl.bigquery_client import (
    api_exceptions,
    bigquery,
    make_client,
    rate_limit_retry,
    retry,
    translate,
)
from etl.exceptions import (
    BadInputError,
    DestinationError,
    EtlError,
    PrimaryKeyError,
    SchemaChangeError,
)
from etl.load import bigquery_tables as tables
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
from etl.load.bigquery_errors import load_error
from etl.load.bigquery_types import bigquery_widened, loadable, normalized, schema_fields
from etl.registry import register_loader
from etl.schema import SOURCE_FILE_COLUMN
from etl.state import SyncState

PART_ROWS = 1_000_000
"""Rows per Parquet file sent in one load job (each part is written to a temporary file)."""
STAGING_EXPIRATION = dt.timedelta(days=1)

_LOG_SCHEMA = [
    ("table_name", "STRING"),
    ("run_id", "STRING"),
    ("committed_at", "TIMESTAMP"),
    ("rows_loaded", "INT64"),
    ("state", "STRING"),
    ("pipeline_id", "STRING"),
]
FENCE_ERROR = re.compile(r"etl-fence\[run=(.*?);owner=(.*?)\]etl-fence-end", re.DOTALL)
"""The message of the commit script's `ERROR()` when the load log moved on: the newest entry's
run id and pipeline id (empty for none / NULL)."""


@register_loader("bigquery")
class BigQueryLoader(Loader):
    """Load into `destination.project`.`destination.dataset` (created in `location` if missing)."""

    def __init__(self, destination: Any) -> None:
        super().__init__(destination)
        self._client: bigquery.Client | None = None
        self._has_pipeline_id = False

    @property
    def client(self) -> bigquery.Client:
        if self._client is None:
            d = self.destination
            self._client = make_client(
                project=d.project,
                credentials=d.credentials,
                api_endpoint=d.api_endpoint,
                location=d.location,
            )
        return self._client

    def table_id(self, table: str) -> str:
        return f"{self.destination.project}.{self.destination.dataset}.{table}"

    def _call(self, what: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, retry=retry(self.destination.timeout_s), **kwargs)
        except EtlError:
            raise
        except Exception as exc:  # noqa: BLE001  every API error is translated
            raise translate(exc, what) from exc

    def _ensure_dataset(self) -> None:
        dataset = bigquery.Dataset(f"{self.destination.project}.{self.destination.dataset}")
        if self.destination.location:
            dataset.location = self.destination.location
        self._call("dataset creation", self.client.create_dataset, dataset, exists_ok=True)
        log = bigquery.Table(
            self.table_id(LOAD_LOG_TABLE),
            schema=[bigquery.SchemaField(name, kind) for name, kind in _LOG_SCHEMA],
        )
        self._call("load log creation", self.client.create_table, log, exists_ok=True)
        if not self._log_has_pipeline_id():
            # a load log made before pipeline ids: its entries stay NULL (owned by no one)
            self._query(
                f"ALTER TABLE `{self.table_id(LOAD_LOG_TABLE)}` "
                "ADD COLUMN IF NOT EXISTS pipeline_id STRING",
                [],
                what="the load log's pipeline_id column",
            )

    def _log_has_pipeline_id(self) -> bool:
        """Whether the load log has its `pipeline_id` column (a query, not the table's schema:
        the emulator's catalog does not show a column added by ALTER TABLE)."""
        if not self._has_pipeline_id:
            try:
                self._query(
                    f"SELECT pipeline_id FROM `{self.table_id(LOAD_LOG_TABLE)}` LIMIT 0",
                    [],
                    what="the load log",
                )
            except EtlError:
                return False
            self._has_pipeline_id = True
        return True

    def _wait(self, job: Any, what: str) -> Any:
        try:
            return job.result(timeout=self.destination.timeout_s)
        except Exception as exc:  # noqa: BLE001
            raise translate(exc, what) from exc

    def _query(
        self, sql: str, params: list[Any], job_id: str | None = None, what: str = "query"
    ) -> Any:
        config = bigquery.QueryJobConfig(query_parameters=params, labels=dict(self.job_labels))
        if job_id is not None:
            existing = self._existing_job(job_id)
            if existing is not None:
                return self._wait(existing, what)
        # a fixed job id cannot be retried under the same id: no job_retry then
        extra = {"job_retry": None} if job_id is not None else {}
        job = self._call(what, self.client.query, sql, job_config=config, job_id=job_id, **extra)
        return self._wait(job, what)

    def _existing_job(self, job_id: str) -> Any:
        try:
            job = self.client.get_job(job_id, retry=retry(self.destination.timeout_s))
        except api_exceptions.NotFound:
            return None
        except Exception:  # noqa: BLE001  an emulator may not list jobs; submit instead
            return None
        return job if getattr(job, "error_result", None) is None else None

    def last_committed(self, table: str, pipeline_id: str | None = None) -> CommittedLoad | None:
        try:
            self.client.get_table(
                self.table_id(LOAD_LOG_TABLE), retry=retry(self.destination.timeout_s)
            )
        except api_exceptions.NotFound:
            return None
        except Exception as exc:  # noqa: BLE001
            raise translate(exc, "the load log") from exc
        newest = self._newest(table)
        check_owner(table, pipeline_id, {name: entry[2] for name, entry in newest.items()})
        if table not in newest:
            return None
        run_id, state, owner = newest[table]
        return CommittedLoad(
            run_id=run_id, state=SyncState.model_validate_json(state), pipeline_id=owner
        )

    def _newest(self, table: str) -> dict[str, tuple[str, str, str | None]]:
        """Return table name -> (run_id, state JSON, pipeline_id) of the newest load-log entry
        of each table `owned_with(table)` that has one (pipeline_id NULL in a load log older
        than the column)."""
        owner = "pipeline_id" if self._log_has_pipeline_id() else "CAST(NULL AS STRING)"
        names = ", ".join(_literal(name) for name in owned_with(table))
        sql = (
            f"SELECT table_name, run_id, state, {owner} AS pipeline_id "
            f"FROM `{self.table_id(LOAD_LOG_TABLE)}` WHERE table_name IN ({names}) "
            "QUALIFY ROW_NUMBER() OVER (PARTITION BY table_name ORDER BY committed_at DESC) = 1"
        )
        rows = self._query(sql, [], what="the load log")
        return {
            row["table_name"]: (row["run_id"], row["state"], row["pipeline_id"]) for row in rows
        }

    def load(self, request: LoadRequest) -> LoadResult:
        self._ensure_dataset()
        tag = request.run_id.replace("-", "")[:32]
        staging = self.table_id(f"{request.table}__etl_staging_{tag}")
        self._drop_abandoned_staging(request.table)
        loaded_at = dt.datetime.now(dt.UTC)
        columns: dict[str, bigquery.SchemaField] = {}
        arrow_types: dict[str, pa.DataType] = {}
        rows = 0
        file_rows: dict[str, int] = {}  # rows of each source file in earlier batches
        source_types: dict[str, str] = {}  # column -> source Arrow type (column descriptions)
        try:  # the staging table goes whether the load fails or commits
            with tempfile.TemporaryDirectory(prefix="etl-bq-") as tmp:
                parts = _PartWriter(
                    Path(tmp),
                    lambda path, n: self._load_part(
                        staging, path, n, tag, request.table, sources=parts
                    ),
                )
                for batch in request.batches:
                    _check_bigquery_values(batch, rows, file_rows)
                    for field in batch.schema:
                        source_types.setdefault(field.name, str(field.type))
                    batch = _with_metadata(batch, request.run_id, loaded_at)
                    fields = schema_fields(batch.schema)
                    if not columns:
                        self._check_options(request.table, fields)
                        # a snapshot's staging table is swapped in: laid out like the table
                        layout = request.write_disposition == "replace"
                        self._create(staging, fields, expires=True, layout=layout)
                        columns = {f.name: f for f in fields}
                    else:
                        batch = self._evolve_staging(
                            staging, columns, fields, batch, parts, request.table
                        )
                    for field in batch.schema:
                        arrow_types.setdefault(field.name, field.type)
                    parts.write(_align(batch, columns, arrow_types))
                    rows += batch.num_rows
                    if request.on_batch:
                        request.on_batch(batch.num_rows)
                parts.close()
            self._commit(request, staging, columns, rows)
        finally:
            for table_id in (staging, self._rejected_staging(request.table, tag)):
                self._call("staging cleanup", self.client.delete_table, table_id, not_found_ok=True)
        table = self._call("table lookup", self.client.get_table, self.table_id(request.table))
        table = self._sync_options(table, request, source_types)
        schema = [
            {
                "name": f.name,
                "type": f.field_type if f.mode != "REPEATED" else f"ARRAY<{f.field_type}>",
            }
            for f in table.schema
        ]
        return LoadResult(rows_loaded=rows, schema=schema)

    def _drop_abandoned_staging(self, table: str) -> None:
        """Delete the staging tables of `table` that killed runs left (runs of one data source
        never overlap, so none of them is in use; a stalled run presumed dead whose staging
        table goes is refused at its commit by the fence anyway); they would otherwise linger
        until they expire (STAGING_EXPIRATION)."""
        prefixes = (f"{table}__etl_staging_", f"{table}{REJECTED_SUFFIX}__etl_staging_")
        dataset = f"{self.destination.project}.{self.destination.dataset}"
        for item in self._call("staging cleanup", self.client.list_tables, dataset):
            if item.table_id.startswith(prefixes):
                self._call(
                    "staging cleanup",
                    self.client.delete_table,
                    self.table_id(item.table_id),
                    not_found_ok=True,
                )

    def _check_options(self, table: str, fields: list) -> None:
        """Fail before loading when a partition/clustering column is missing or mistyped, or
        the configured partitioning is not the existing table's (etl/load/bigquery_tables.py)."""
        tables.check_columns(self.destination, fields)
        tables.refuse_fixed_changes(self._table_or_none(self.table_id(table)), self.destination)

    def _sync_options(self, table: Any, request: LoadRequest, source_types: dict) -> Any:
        """Apply changed table options and column descriptions after the commit (swaps and
        schema evolution included); return the table."""
        sources = request.column_sources() if request.column_sources else {}
        descriptions = {
            name: tables.column_description(sources.get(name, name), kind)
            for name, kind in source_types.items()
            if not name.startswith("_etl_")
        }

        def update(table: Any, fields: list[str]) -> Any:
            return self._call("table options", self.client.update_table, table, fields)

        return tables.sync_options(table, self.destination, descriptions, update)

    def _create(
        self, table_id: str, fields: list, *, expires: bool = False, layout: bool = False
    ) -> None:
        """Create `table_id`; `layout`: with the configured partitioning and clustering (and,
        for the destination table itself, its description and labels)."""
        table = bigquery.Table(table_id, schema=fields)
        if layout:
            tables.apply_layout(table, self.destination, metadata=not expires)
        if expires:
            table.expires = dt.datetime.now(dt.UTC) + STAGING_EXPIRATION
        self._call(f"creation of {table_id}", self.client.create_table, table)

    def _evolve_staging(self, staging, columns, fields, batch, parts, table):  # type: ignore[no-untyped-def]
        new = [f for f in fields if f.name not in columns]
        for field in fields:
            old = columns.get(field.name)
            if old is not None and (old.field_type, old.mode) != (field.field_type, field.mode):
                if batch.column(field.name).null_count != batch.num_rows:
                    raise SchemaChangeError(table, field.name, old.field_type, field.field_type)
                batch = batch.drop_columns([field.name])  # all NULL: the aligned part fills it
        if new:
            parts.flush()
            self._add_columns(staging, new)
            columns.update({f.name: f for f in new})
        return batch

    def _add_columns(self, table_id: str, fields: list) -> None:
        table = self._call("table lookup", self.client.get_table, table_id)
        table.schema = [*table.schema, *fields]
        self._call(f"new columns of {table_id}", self.client.update_table, table, ["schema"])

    def _load_part(
        self, staging: str, path: Path, number: int, tag: str, table: str, sources: Any = None
    ) -> None:
        """Load one staged Parquet part; `sources` (the `_PartWriter`) maps a failed job's
        rows back to their source file and row (etl/load/bigquery_errors.py)."""
        config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.PARQUET,
            write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
            schema=self._call("table lookup", self.client.get_table, staging).schema,
            labels=dict(self.job_labels),
        )
        config.parquet_options = bigquery.ParquetOptions()
        config.parquet_options.enable_list_inference = True
        jobs: list[Any] = []

        def attempt() -> Any:  # a new job id each time: a failed job's id cannot be reused
            job_id = f"etl_{tag}_part{number:05d}_{uuid.uuid4().hex[:8]}"
            with open(path, "rb") as handle:
                job = self.client.load_table_from_file(
                    handle,
                    staging,
                    job_config=config,
                    job_id=job_id,
                    rewind=True,
                    timeout=self.destination.timeout_s,
                )
            jobs.append(job)
            return job.result(timeout=self.destination.timeout_s)

        try:  # rateLimitExceeded / short-window quotaExceeded: backoff with jitter, new job
            rate_limit_retry(self.destination.timeout_s)(attempt)()
        except Exception as exc:  # noqa: BLE001  every API error is translated
            job = jobs[-1] if jobs else None
            job_id = job.job_id if job is not None else "not submitted"
            error = translate(exc, f"the load of {table} (job {job_id}, {path.name})")
            if job is None or type(error) is not DestinationError:
                raise error from exc
            raise load_error(
                table=table,
                job_id=job_id,
                errors=job.errors or getattr(exc, "errors", None) or [],
                part=path,
                files_before=sources.files_loaded if sources is not None else None,
                rows_before=sources.rows_loaded if sources is not None else 0,
            ) from exc

    def _commit(self, request: LoadRequest, staging: str, columns: dict, rows: int) -> None:
        target = self.table_id(request.table)
        exists = self._table_or_none(target)
        if columns:
            if exists is None:
                self._create(target, list(columns.values()), layout=True)
            elif request.write_disposition in ("append", "merge"):
                self._evolve_target(
                    exists, columns, request.table, staging, request.allow_widen_to_string
                )
        merge = None
        if request.write_disposition == "merge" and columns:
            assert request.merge_key is not None
            target_columns = list(exists.schema) if exists is not None else []
            merge = self._merge_statement(
                request.table, staging, columns, target_columns, request.merge_key()
            )
        state = request.finalize()
        # literals, not query parameters: scripts with parameters are not supported everywhere
        # (the BigQuery emulator drops them); `_literal` escapes per the lexical rules.
        fence = request.fence
        owner = _literal(fence.pipeline_id) if fence is not None else "NULL"
        log_insert = (
            f"INSERT INTO `{self.table_id(LOAD_LOG_TABLE)}` (table_name, run_id, committed_at, "
            f"rows_loaded, state, pipeline_id) VALUES ({_literal(request.table)}, "
            f"{_literal(request.run_id)}, CURRENT_TIMESTAMP(), {int(rows)}, "
            f"{_literal(state.model_dump_json())}, {owner});"
        )
        tag = request.run_id.replace("-", "")[:32]
        rejected_insert = self._stage_rejected(request, tag)
        if request.write_disposition == "replace":
            if fence is not None:
                # the swap cannot join the transaction: refuse a stale plan before it
                newest = self._newest(request.table)
                found = newest.get(request.table)
                check_fence(
                    request.table, fence, found[0] if found else None, found[2] if found else None
                )
            if columns:
                copy = bigquery.CopyJobConfig(
                    write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
                    labels=dict(self.job_labels),
                )
                job = self._call(
                    "snapshot swap",
                    self.client.copy_table,
                    staging,
                    target,
                    job_config=copy,
                    job_id=f"etl_{tag}_swap_{uuid.uuid4().hex[:8]}",
                )
                self._wait(job, f"snapshot swap into {request.table}")
                if request.fault_hook is not None:
                    request.fault_hook("catalog.swap")
                statements = [log_insert]
            else:  # empty snapshot
                statements = [f"DELETE FROM `{target}` WHERE TRUE;"] if exists else []
                statements.append(log_insert)
        else:
            statements = []
            if request.replace_files:
                files = ", ".join(_literal(name) for name in request.replace_files)
                # merge deletes no row: a changed file's rows are merged by key like new ones
                if exists is not None and request.write_disposition == "append":
                    statements.append(
                        f"DELETE FROM `{target}` WHERE _etl_source_file IN ({files});"
                    )
                rejected_table = self.table_id(request.table + REJECTED_SUFFIX)
                if self._table_or_none(rejected_table) is not None:
                    # a changed file's earlier rejects go with its earlier rows
                    statements.append(f"DELETE FROM `{rejected_table}` WHERE file IN ({files});")
            if merge is not None:
                statements.append(merge)
            elif columns:
                names = ", ".join(f"`{name}`" for name in columns)
                statements.append(
                    f"INSERT INTO `{target}` ({names}) SELECT {names} FROM `{staging}`;"
                )
            statements.append(log_insert)
        if request.write_disposition == "replace":
            rejected_table = self.table_id(request.table + REJECTED_SUFFIX)
            if self._table_or_none(rejected_table) is not None:
                # a snapshot's rejects are its own: the earlier snapshot's go in this commit
                statements.insert(
                    len(statements) - 1, f"DELETE FROM `{rejected_table}` WHERE TRUE;"
                )
        if rejected_insert:
            statements.insert(len(statements) - 1, rejected_insert)
        if fence is not None:
            statements.insert(0, self._fence_statement(request.table, fence))
        script = "BEGIN TRANSACTION;\n" + "\n".join(statements) + "\nCOMMIT TRANSACTION;"
        # the id names the run, the target table and the state it commits: a retried submission
        # of this commit is found, not run twice; a later run under the same run id (its state
        # lost and adopted from the load log) that read new rows commits a new state, and the
        # same run id in another dataset is another commit, so both run (job ids are unique per
        # project: the fixed `etl_<run>_commit` made them find the old job and drop their rows).
        key = f"{target}\n{state.model_dump_json()}"
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        try:
            self._query(
                script,
                [],
                job_id=f"etl_{tag}_commit_{digest}",
                what=f"commit into {request.table}",
            )
        except EtlError as exc:
            refused = FENCE_ERROR.search(str(exc))
            if fence is None or refused is None:
                raise
            check_fence(request.table, fence, refused[1] or None, refused[2] or None)
            raise  # unreachable unless the log moved back: keep BigQuery's error

    def _fence_statement(self, table: str, fence: Fence) -> str:
        """Return the statement that fails the commit script (rolling its transaction back)
        with `FENCE_ERROR`'s message when the newest load-log entry of `table` is not
        `fence.expected_run_id`, or is another pipeline's."""

        def newest(column: str) -> str:
            return (
                f"(SELECT {column} FROM `{self.table_id(LOAD_LOG_TABLE)}` "
                f"WHERE table_name = {_literal(table)} ORDER BY committed_at DESC LIMIT 1)"
            )

        found_run, found_owner = newest("run_id"), newest("pipeline_id")
        pipeline = _literal(fence.pipeline_id)
        return (
            f"SELECT IF(IFNULL({found_run}, '') != {_literal(fence.expected_run_id or '')} "
            f"OR IFNULL({found_owner}, {pipeline}) != {pipeline}, "
            f"ERROR(CONCAT('etl-fence[run=', IFNULL({found_run}, ''), ';owner=', "
            f"IFNULL({found_owner}, ''), ']etl-fence-end')), NULL);"
        )

    def _merge_statement(
        self, table: str, staging: str, columns: dict, target_columns: list, key: MergeKey
    ) -> str:
        """Check the staged rows of a merge and return the `MERGE` of each key's latest row
        into `table`, run inside the commit's transaction.

        The latest row of a key is the one with the greatest `key.order_by` values (NULL
        lowest); it replaces the table's row with that key whatever the table row's cursor
        (the source's current row wins, also when its cursor moved back), or is inserted. A
        table column the staging lacks is set NULL in a replaced row, as in an appended one.
        Only the staging table is read here; the MERGE itself runs in the commit.

        Raises:
            PrimaryKeyError: two staged rows share the key and the `order_by` values.
        """
        both = ", ".join(f"`{name}`" for name in [*key.primary_key, *key.order_by])
        rows = list(
            self._query(
                f"SELECT {both}, COUNT(*) AS n FROM `{staging}` GROUP BY {both} "
                "HAVING COUNT(*) > 1 LIMIT 1",
                [],
                what=f"the primary key check of {table}",
            )
        )
        if rows:
            raise PrimaryKeyError(table, key.primary_key, duplicate_reason(key, rows[0].values()))
        names = ", ".join(f"`{name}`" for name in columns)
        partition = ", ".join(f"`{name}`" for name in key.primary_key)
        order = ", ".join(f"`{name}` DESC" for name in key.order_by)  # NULLs sort last in DESC
        latest = (
            f"SELECT {names} FROM (SELECT {names}, ROW_NUMBER() OVER (PARTITION BY {partition} "
            f"ORDER BY {order}) AS _etl_version FROM `{staging}`) WHERE _etl_version = 1"
        )
        match = " AND ".join(f"T.`{name}` = S.`{name}`" for name in key.primary_key)
        updates = [f"`{name}` = S.`{name}`" for name in columns if name not in key.primary_key]
        updates += [f"`{f.name}` = NULL" for f in target_columns if f.name not in columns]
        values = ", ".join(f"S.`{name}`" for name in columns)
        return (
            f"MERGE `{self.table_id(table)}` T USING ({latest}) S ON {match} "
            f"WHEN MATCHED THEN UPDATE SET {', '.join(updates)} "
            f"WHEN NOT MATCHED THEN INSERT ({names}) VALUES ({values});"
        )

    def _rejected_staging(self, table: str, tag: str) -> str:
        return self.table_id(f"{table}{REJECTED_SUFFIX}__etl_staging_{tag}")

    def _stage_rejected(self, request: LoadRequest, tag: str) -> str | None:
        """Load the run's rejected rows into a staging table; return the statement that appends
        them to `<table>__rejected` in the commit (None when no row was rejected)."""
        rejected = request.rejected_rows() if request.rejected_rows else None
        if rejected is None or not rejected.num_rows:
            return None
        fields = [
            *schema_fields(rejected.schema),
            bigquery.SchemaField(RUN_ID_COLUMN, "STRING"),
            bigquery.SchemaField(LOADED_AT_COLUMN, "TIMESTAMP"),
        ]
        target = self.table_id(request.table + REJECTED_SUFFIX)
        if self._table_or_none(target) is None:
            self._create(target, fields)
        staging = self._rejected_staging(request.table, tag)
        self._call("staging cleanup", self.client.delete_table, staging, not_found_ok=True)
        self._create(staging, fields[:-1], expires=True)
        rows = rejected.append_column(
            RUN_ID_COLUMN, pa.array([request.run_id] * rejected.num_rows, pa.string())
        )
        with tempfile.TemporaryDirectory(prefix="etl-bq-") as tmp:
            path = Path(tmp) / "rejected.parquet"
            pq.write_table(rows, path)
            self._load_part(staging, path, 0, tag, request.table + REJECTED_SUFFIX)
        names = ", ".join(f"`{f.name}`" for f in fields[:-1])
        return (
            f"INSERT INTO `{target}` ({names}, `{LOADED_AT_COLUMN}`) "
            f"SELECT {names}, CURRENT_TIMESTAMP() FROM `{staging}`;"
        )

    def _table_or_none(self, table_id: str) -> Any:
        try:
            return self.client.get_table(table_id, retry=retry(self.destination.timeout_s))
        except api_exceptions.NotFound:
            return None
        except Exception as exc:  # noqa: BLE001
            raise translate(exc, table_id) from exc

    def _evolve_target(
        self, table: Any, columns: dict, name: str, staging: str, to_string: bool
    ) -> None:
        """Add the run's new columns to `table` and widen the columns whose type the run's
        values need (`bigquery_widened`): INT64 -> NUMERIC -> BIGNUMERIC with ALTER COLUMN SET
        DATA TYPE, in place; to STRING (only with `to_string`) by rewriting the table with the
        column cast, since ALTER COLUMN cannot change a type to STRING (then a partitioned or
        clustered table is refused rather than recreated without its layout). A STRING column
        receiving other values gets them as text: the staging table is rewritten with the cast.

        Raises:
            SchemaChangeError: a narrowing or incompatible change, naming the column and both
                types (terminal).
        """
        existing = {f.name: f for f in table.schema}
        target = f"`{table.full_table_id.replace(':', '.')}`"
        alters: list[str] = []
        target_casts: list[str] = []
        staging_casts: list[str] = []
        for field in columns.values():
            old = existing.get(field.name)
            if old is None:
                continue
            old_type, new_type = normalized(old.field_type), normalized(field.field_type)
            if (old_type, old.mode) == (new_type, field.mode):
                continue
            wider = None
            if old.mode == field.mode == "NULLABLE":
                wider = bigquery_widened(old_type, new_type, to_string=to_string)
            if wider is None or (wider == "STRING" and old_type != "STRING" and _laid_out(table)):
                raise SchemaChangeError(name, field.name, old_type, new_type)
            if wider == "STRING" and old_type != "STRING":
                target_casts.append(field.name)
            elif wider != old_type:
                alters.append(f"ALTER COLUMN `{field.name}` SET DATA TYPE {wider}")
            if wider == "STRING" and new_type != "STRING":
                staging_casts.append(field.name)
        if alters:
            self._query(f"ALTER TABLE {target} {', '.join(alters)}", [], what=f"widening of {name}")
        for table_ref, casts in ((target, target_casts), (f"`{staging}`", staging_casts)):
            if casts:
                replace = ", ".join(f"CAST(`{c}` AS STRING) AS `{c}`" for c in casts)
                self._query(
                    f"CREATE OR REPLACE TABLE {table_ref} AS "
                    f"SELECT * REPLACE ({replace}) FROM {table_ref}",
                    [],
                    what=f"widening of {name} to STRING",
                )
        new = [f for f in columns.values() if f.name not in existing]
        if new:
            ddl = ", ".join(f"ADD COLUMN `{f.name}` {_ddl_type(f)}" for f in new)
            self._query(
                f"ALTER TABLE {target} {ddl}",
                [],
                what=f"new columns of {name}",
            )


def _laid_out(table: Any) -> bool:
    """Return True when `table` has a partitioning or clustering a rewrite would drop."""
    return bool(table.time_partitioning or table.range_partitioning or table.clustering_fields)


def _literal(value: str) -> str:
    """Return `value` as a GoogleSQL string literal (https://cloud.google.com/bigquery/docs/
    reference/standard-sql/lexical#string_and_bytes_literals)."""
    escaped = (
        value.replace("\\", "\\\\")
        .replace("'", "\\'")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )
    return f"'{escaped}'"


def _ddl_type(field: Any) -> str:
    if field.field_type == "RECORD":
        inner = ", ".join(f"`{f.name}` {_ddl_type(f)}" for f in field.fields)
        kind = f"STRUCT<{inner}>"
    else:
        kind = {"BOOLEAN": "BOOL", "INTEGER": "INT64", "FLOAT": "FLOAT64"}.get(
            field.field_type, field.field_type
        )
    return f"ARRAY<{kind}>" if field.mode == "REPEATED" else kind


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


def _check_bigquery_values(batch: pa.RecordBatch, run_rows: int, file_rows: dict[str, int]) -> None:
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


def _with_metadata(batch: pa.RecordBatch, run_id: str, loaded_at: dt.datetime) -> pa.RecordBatch:
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


def _align(batch: pa.RecordBatch, columns: dict, arrow_types: dict[str, pa.DataType]) -> pa.Table:
    """Return `batch` with every staging column, in staging order (missing ones NULL)."""
    table = pa.Table.from_batches([batch])
    arrays = [
        table.column(name)
        if name in batch.schema.names
        else pa.nulls(batch.num_rows, type=arrow_types[name])
        for name in columns
    ]
    return pa.Table.from_arrays(arrays, names=list(columns))


class _PartWriter:
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
