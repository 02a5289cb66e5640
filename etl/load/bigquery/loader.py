"""BigQuery loader: one Parquet load job into a per-run staging table, then one atomic commit.

The run's batches are written to one staged Parquet file (etl/load/bigquery/staging.py) and
loaded by one load job once the extraction ends: one load job per table per run, whatever the
row count (another one only for quarantined rows, into `<table>__rejected`).

Transactional (append): one multi-statement transaction deletes the rows of replaced source
files, inserts the staging rows into the table and records the load (run id + state) in
`<dataset>._etl_loads`. Merge: the same transaction runs a `MERGE` of each key's latest staged
row into the table instead of the INSERT (and deletes no row). Catalog (replace): a copy job with WRITE_TRUNCATE swaps the staging
table in (readers see the old or the new table), then one transaction replaces the rows of
`<table>__rejected` with this snapshot's rejects and records the load. Never streaming
inserts. Every job (load, query, copy) carries the run's labels (`etl.load.base.job_labels`).
The commit's job id derives from the run id, the target table and the state it
commits, so a retried commit is found, not run twice.

Fencing (etl/load/loadlog.py): the commit transaction's first statement reads the newest load-log
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
from pathlib import Path

import pyarrow as pa

from etl.bigquery_client import bigquery
from etl.load.base import LoadRequest, LoadResult
from etl.load.bigquery.commit import CommitMixin
from etl.load.bigquery.jobs import run_tag
from etl.load.bigquery.null_lists import count_null_lists, null_list_warnings
from etl.load.bigquery.staging import (
    PartWriter,
    align,
    check_bigquery_values,
    with_metadata,
)
from etl.load.bigquery.types import schema_fields
from etl.load.loadlog import REJECTED_SUFFIX
from etl.registry import register_loader


@register_loader("bigquery")
class BigQueryLoader(CommitMixin):
    """Load into `destination.project`.`destination.dataset` (created in `location` if missing).

    One class, one module per job: API calls (`jobs`), the load log (`loadlog`), tables and
    their evolution (`evolve`), merge statements (`merge`), the commit (`commit`); this module
    stages the batches.
    """

    def load(self, request: LoadRequest) -> LoadResult:
        self._ensure_dataset()
        tag = run_tag(request.run_id)
        staging = self.table_id(f"{request.table}__etl_staging_{tag}")
        self._drop_abandoned_staging(request.table)
        source_types: dict[str, str] = {}  # column -> source Arrow type (column descriptions)
        null_lists: dict[str, int] = {}  # column path -> NULL arrays, loaded as []
        try:  # the staging table goes whether the load fails or commits
            columns, rows = self._stage(request, staging, tag, source_types, null_lists)
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

    def _stage(
        self,
        request: LoadRequest,
        staging: str,
        tag: str,
        source_types: dict[str, str],
        null_lists: dict[str, int],
    ) -> tuple[dict[str, bigquery.SchemaField], int]:
        """Write `request.batches` to the run's staged Parquet, then load it into the `staging`
        table (created from the first batch, evolved for later ones) with one load job; fill
        `source_types` and `null_lists` (column path -> NULL arrays, loaded as `[]`); return the
        staging columns and the rows staged."""
        loaded_at = dt.datetime.now(dt.UTC)
        columns: dict[str, bigquery.SchemaField] = {}
        arrow_types: dict[str, pa.DataType] = {}
        rows = 0
        file_rows: dict[str, int] = {}  # rows of each source file in earlier batches
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
        return columns, rows

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
