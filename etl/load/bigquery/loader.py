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
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa

from etl.bigquery_client import (
    api_exceptions,
    bigquery,
    make_client,
    rate_limit_retry,
    retry,
    translate,
)
from etl.exceptions import (
    DestinationError,
    EtlError,
)
from etl.load.base import (
    LOAD_LOG_TABLE,
    REJECTED_SUFFIX,
    CommittedLoad,
    Loader,
    LoadRequest,
    LoadResult,
    check_owner,
    owned_with,
)
from etl.load.bigquery.commit import CommitMixin
from etl.load.bigquery.errors import load_error
from etl.load.bigquery.evolve import TablesMixin
from etl.load.bigquery.sql import literal
from etl.load.bigquery.staging import (
    PartWriter,
    align,
    check_bigquery_values,
    count_null_lists,
    null_list_warnings,
    with_metadata,
)
from etl.load.bigquery.types import schema_fields
from etl.registry import register_loader
from etl.state import SyncState

_LOG_SCHEMA = [
    ("table_name", "STRING"),
    ("run_id", "STRING"),
    ("committed_at", "TIMESTAMP"),
    ("rows_loaded", "INT64"),
    ("state", "STRING"),
    ("pipeline_id", "STRING"),
]


@register_loader("bigquery")
class BigQueryLoader(CommitMixin, TablesMixin, Loader):
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
                project=d.project or "",  # required of a bigquery destination (DestinationConfig)
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
        names = ", ".join(literal(name) for name in owned_with(table))
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
        null_lists: dict[str, int] = {}  # column path -> NULL arrays, loaded as []
        try:  # the staging table goes whether the load fails or commits
            with tempfile.TemporaryDirectory(prefix="etl-bq-") as tmp:
                parts: PartWriter = PartWriter(
                    Path(tmp),
                    lambda path, n: self._load_part(
                        staging,
                        path,
                        n,
                        tag,
                        request.table,
                        sources=parts,
                        source_line=request.source_line,
                    ),
                )
                for batch in request.batches:
                    check_bigquery_values(batch, rows, file_rows)
                    count_null_lists(batch, null_lists, request.table, request.on_unrepresentable)
                    for field in batch.schema:
                        source_types.setdefault(field.name, str(field.type))
                    batch = with_metadata(batch, request.run_id, loaded_at)
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
                    parts.write(align(batch, columns, arrow_types))
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
        return LoadResult(rows_loaded=rows, schema=schema, warnings=null_list_warnings(null_lists))

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

    def _load_part(
        self,
        staging: str,
        path: Path,
        number: int,
        tag: str,
        table: str,
        sources: Any = None,
        source_line: Any = None,
    ) -> None:
        """Load one staged Parquet part; `sources` (the `PartWriter`) maps a failed job's
        rows back to their source file and row, `source_line` (`LoadRequest.source_line`)
        a file's row to its line (etl/load/bigquery/errors.py)."""
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
                source_line=source_line,
            ) from exc
