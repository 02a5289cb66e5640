"""The BigQuery loader's commit: the fenced multi-statement transaction (append, merge) or the
catalog swap, the load-log entry, and the rejects side table.

What the commit deletes of earlier loads (rows of replaced files, earlier rejects) is the
policy of `etl.load.base.replaced`, shared with the DuckDB loader.
"""

from __future__ import annotations

import hashlib
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from etl.bigquery_client import bigquery, rate_limit_retry
from etl.exceptions import EtlError
from etl.load.base import LOADED_AT_COLUMN, RUN_ID_COLUMN, LoadRequest, replaced
from etl.load.bigquery.evolve import TablesMixin
from etl.load.bigquery.jobs import run_tag
from etl.load.bigquery.loadlog import FENCE_ERROR, LoadLogMixin
from etl.load.bigquery.merge import MergeMixin
from etl.load.bigquery.sql import literal
from etl.load.bigquery.types import schema_fields
from etl.load.loadlog import REJECTED_SUFFIX, check_fence, check_fence_newest
from etl.state import SyncState


class CommitMixin(MergeMixin, LoadLogMixin, TablesMixin):
    """The commit step of `BigQueryLoader`."""

    def _commit(self, request: LoadRequest, staging: str, columns: dict, rows: int) -> None:
        """Commit the staged rows of `request` into its table with the load-log entry: one
        transaction (a snapshot's swap is a copy job just before it).

        Raises:
            SupersededError, TableOwnedError: the load log moved on since the run planned.
            PrimaryKeyError: `merge` rows share a key and its ordering values.
        """
        exists = self._prepare_target(request, staging, columns)
        merge = None
        if request.write_disposition == "merge" and columns:
            assert request.merge_key is not None
            target_columns = list(exists.schema) if exists is not None else []
            merge = self._merge_statement(
                request.table, staging, columns, target_columns, request.merge_key()
            )
        state = request.finalize()
        tag = run_tag(request.run_id)
        rejected_insert = self._stage_rejected(request, tag)
        if request.write_disposition == "replace":
            statements = self._swap(request, staging, columns, exists, tag)
        else:
            statements = self._write_statements(request, staging, columns, exists, merge)
        statements += self._reject_deletes(request)
        if rejected_insert:
            statements.append(rejected_insert)
        statements.append(self._log_insert(request, rows, state))
        if request.fence is not None:
            statements.insert(0, self._fence_statement(request.table, request.fence))
        self._submit(request, statements, state)

    def _prepare_target(self, request: LoadRequest, staging: str, columns: dict) -> Any:
        """Create the destination table for the run's columns, or evolve it (append, merge);
        return the table as it was before, or None when it did not exist."""
        target = self.table_id(request.table)
        exists = self._table_or_none(target)
        if columns:
            if exists is None:
                self._create(target, list(columns.values()), layout=True)
            elif request.write_disposition in ("append", "merge"):
                self._evolve_target(
                    exists, columns, request.table, staging, request.allow_widen_to_string
                )
        return exists

    def _swap(
        self, request: LoadRequest, staging: str, columns: dict, exists: Any, tag: str
    ) -> list[str]:
        """Swap a snapshot's staging table in with a copy job (it cannot join the commit's
        transaction); return the commit's statements on the table itself."""
        target = self.table_id(request.table)
        if request.fence is not None:
            # the swap cannot join the transaction: refuse a stale plan before it
            check_fence_newest(request.table, request.fence, self._newest(request.table))
        if not columns:  # empty snapshot
            return [f"DELETE FROM `{target}` WHERE TRUE;"] if exists else []
        if request.merge_key is not None:
            # a merge's full refresh: one row per key, as merging the rows would leave
            self._keep_latest(request.table, staging, request.merge_key())
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
        return []

    def _write_statements(
        self, request: LoadRequest, staging: str, columns: dict, exists: Any, merge: str | None
    ) -> list[str]:
        """Return the statements that delete replaced files' rows (append) and insert or merge
        the staged rows into the table."""
        target = self.table_id(request.table)
        statements = []
        files = replaced(request).row_files
        if files and exists is not None:
            names = ", ".join(literal(name) for name in files)
            statements.append(f"DELETE FROM `{target}` WHERE _etl_source_file IN ({names});")
        if merge is not None:
            statements.append(merge)
        elif columns:
            names = ", ".join(f"`{name}`" for name in columns)
            statements.append(f"INSERT INTO `{target}` ({names}) SELECT {names} FROM `{staging}`;")
        return statements

    def _reject_deletes(self, request: LoadRequest) -> list[str]:
        """Return the statements deleting the earlier rejects `replaced` names."""
        policy = replaced(request)
        if not policy.all_rejects and not policy.reject_files:
            return []
        rejected_table = self.table_id(request.table + REJECTED_SUFFIX)
        if self._table_or_none(rejected_table) is None:
            return []
        if policy.all_rejects:
            return [f"DELETE FROM `{rejected_table}` WHERE TRUE;"]
        files = ", ".join(literal(name) for name in policy.reject_files)
        return [f"DELETE FROM `{rejected_table}` WHERE file IN ({files});"]

    def _submit(self, request: LoadRequest, statements: list[str], state: SyncState) -> None:
        """Run `statements` as one transaction, once, retried on rate limits.

        Raises:
            SupersededError, TableOwnedError: the fence statement refused the commit.
        """
        script = "BEGIN TRANSACTION;\n" + "\n".join(statements) + "\nCOMMIT TRANSACTION;"
        # the id names the run, the target table and the state it commits: a retried submission
        # of this commit is found, not run twice; a later run under the same run id (its state
        # lost and adopted from the load log) that read new rows commits a new state, and the
        # same run id in another dataset is another commit, so both run (job ids are unique per
        # project: the fixed `etl_<run>_commit` made them find the old job and drop their rows).
        state_json = state.model_dump_json()
        key = f"{self.table_id(request.table)}\n{state_json}"
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        base_id = f"etl_{run_tag(request.run_id)}_commit_{digest}"
        attempts: list[int] = []

        def attempt() -> None:
            # a job that failed on a rate limit keeps its id: a retry runs as `<id>_r<n>`, after
            # checking that no earlier attempt committed (its answer lost): the load log entry
            # of this run and state is written by the same transaction as the rows
            number = len(attempts)
            attempts.append(number)
            if number and self._committed(request.table, request.run_id, state_json):
                return
            job_id = base_id if not number else f"{base_id}_r{number}"
            self._query(script, [], job_id=job_id, what=f"commit into {request.table}")

        try:
            # rateLimitExceeded / a short-window quotaExceeded: backoff with jitter; a daily
            # quota is not retried (QuotaExceededError names the limit)
            rate_limit_retry(self.destination.timeout_s)(attempt)()
        except EtlError as exc:
            refused = FENCE_ERROR.search(str(exc))
            if request.fence is None or refused is None:
                raise
            check_fence(request.table, request.fence, refused[1] or None, refused[2] or None)
            raise  # unreachable unless the log moved back: keep BigQuery's error

    def _rejected_staging(self, table: str, tag: str) -> str:
        return self.table_id(f"{table}{REJECTED_SUFFIX}__etl_staging_{tag}")

    def _stage_rejected(self, request: LoadRequest, tag: str) -> str | None:
        """Load the run's rejected rows into a staging table; return the statement that appends
        them to `<table>__rejected` in the commit (None when no row was rejected)."""
        rejected = request.rejects()
        if rejected is None:
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
